"""Transport-free, batch-native core: model protocol, scores, budget, Sampler."""
