"""State: pending items (features waiting for their label), applied-label ids."""
