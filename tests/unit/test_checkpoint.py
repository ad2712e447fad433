"""Signed checkpoints: the sampler round-trips exactly, and nothing unverified is unpickled."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.core.sampler import Sampler
from streamer.models import build_model
from streamer.store import checkpoint as ckpt
from streamer.store.checkpoint import Checkpoint, CheckpointError

KEY = b"unit-test-key-0123456789"


def _trained_sampler() -> tuple[Sampler, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 4))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int).tolist()
    sampler = Sampler(build_model("StandardScaler | LogisticRegression"), budget=0.1, seed=3)
    ids = [f"i{k}" for k in range(400)]
    decisions = sampler.decide(X[:400], ids=ids)
    asked = decisions.asked_indices.tolist()
    sampler.learn(X[asked], [y[i] for i in asked], ids=[ids[i] for i in asked])
    return sampler, X[400:]


@pytest.fixture(scope="module")
def blob() -> bytes:
    sampler, _ = _trained_sampler()
    state = Checkpoint(sampler, {("labels", 0): 17, ("labels", 2): 4}, applied=40, correct=31,
                       outcomes={"joined": 40, "late": 1}, model_spec=sampler.model.spec,
                       sampler_config={"budget": 0.1}, sequence=7)
    return ckpt.dumps(state, KEY)


def test_a_restored_sampler_decides_and_predicts_exactly_like_the_original() -> None:
    sampler, X = _trained_sampler()
    restored = ckpt.loads(ckpt.dumps(Checkpoint(sampler), KEY), KEY).sampler

    before, after = sampler.decide(X), restored.decide(X)

    assert np.array_equal(before.ask, after.ask)
    assert np.array_equal(before.proba, after.proba)
    assert before.reason == after.reason
    assert restored.snapshot() == sampler.snapshot()


def test_offsets_counters_and_config_round_trip(blob: bytes) -> None:
    state = ckpt.loads(blob, KEY)

    assert state.label_offsets == {("labels", 0): 17, ("labels", 2): 4}
    assert (state.applied, state.correct, state.sequence) == (40, 31, 7)
    assert state.outcomes == {"joined": 40, "late": 1}
    assert state.sampler_config == {"budget": 0.1}
    assert state.model_spec == "StandardScaler | LogisticRegression"


def test_a_checkpoint_signed_with_another_key_is_refused(blob: bytes) -> None:
    with pytest.raises(CheckpointError, match="integrity check"):
        ckpt.loads(blob, b"another-key-0123456789")


@settings(max_examples=60, derandomize=True, deadline=None)
@given(st.data())
def test_any_flipped_byte_is_refused(blob: bytes, data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(blob) - 1))
    bit = data.draw(st.integers(0, 7))
    tampered = bytearray(blob)
    tampered[position] ^= 1 << bit

    with pytest.raises(CheckpointError):
        ckpt.loads(bytes(tampered), KEY)


@pytest.mark.parametrize("cut", [0, 5, len(ckpt.MAGIC), len(ckpt.MAGIC) + 10, -1])
def test_truncated_checkpoints_are_refused(blob: bytes, cut: int) -> None:
    with pytest.raises(CheckpointError):
        ckpt.loads(blob[:cut], KEY)


class _Exploit:
    """A pickle that would create a file if it were ever unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (str(self.path),))


def test_a_forged_checkpoint_is_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Exploit(marker))
    forged = ckpt.MAGIC + b"\0" * 32 + payload  # right header, made-up signature

    with pytest.raises(CheckpointError, match="refusing to load"):
        ckpt.loads(forged, KEY)
    assert not marker.exists()


def test_something_that_is_not_a_checkpoint_is_refused() -> None:
    with pytest.raises(CheckpointError, match="not a streamer checkpoint"):
        ckpt.loads(b'{"json": "is not a checkpoint"}', KEY)


def test_a_short_key_is_rejected() -> None:
    sampler, _ = _trained_sampler()
    with pytest.raises(ValueError, match="at least 16 bytes"):
        ckpt.dumps(Checkpoint(sampler), b"short")
