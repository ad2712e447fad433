"""NoveltyMemory: exact nearest neighbours, a bounded FIFO memory, and density weights."""

from __future__ import annotations

import numpy as np
import pytest

from streamer.gates.novelty import METRICS, NoveltyMemory


def _brute_force_cosine(Q: np.ndarray, M: np.ndarray) -> np.ndarray:
    best = np.array(
        [max(float(q @ m) / (np.linalg.norm(q) * np.linalg.norm(m)) for m in M) for q in Q]
    )
    return (1.0 - best) / 2.0


def _brute_force_distance(Q: np.ndarray, M: np.ndarray) -> np.ndarray:
    return np.array([min(np.linalg.norm(q - m) for m in M) for q in Q])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cosine_score_is_the_exact_nearest_neighbour(seed: int) -> None:
    rng = np.random.default_rng(seed)
    M, Q = rng.normal(size=(50, 6)), rng.normal(size=(20, 6))
    memory = NoveltyMemory(100, 6, "cosine")
    memory.add(M)
    np.testing.assert_allclose(memory.score(Q), _brute_force_cosine(Q, M), atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_euclidean_score_is_the_nearest_distance_over_distance_plus_spread(seed: int) -> None:
    rng = np.random.default_rng(seed)
    M, Q = rng.normal(size=(50, 6)) * 100.0, rng.normal(size=(20, 6)) * 100.0
    memory = NoveltyMemory(100, 6, "euclidean")
    memory.add(M)
    d = _brute_force_distance(Q, M)
    spread = np.sqrt(2.0 * M.var(axis=0).sum())
    np.testing.assert_allclose(memory.score(Q), d / (d + spread), rtol=1e-10)


def test_euclidean_score_does_not_depend_on_feature_units() -> None:
    rng = np.random.default_rng(3)
    M, Q = rng.normal(size=(40, 4)), rng.normal(size=(10, 4))
    metres, millimetres = NoveltyMemory(40, 4, "euclidean"), NoveltyMemory(40, 4, "euclidean")
    metres.add(M)
    millimetres.add(M * 1000.0)
    np.testing.assert_allclose(metres.score(Q), millimetres.score(Q * 1000.0), rtol=1e-10)


@pytest.mark.parametrize("metric", METRICS)
def test_a_stored_vector_scores_zero(metric: str) -> None:
    rng = np.random.default_rng(4)
    M = rng.normal(size=(30, 5)) * 1e4
    memory = NoveltyMemory(30, 5, metric)
    memory.add(M)
    np.testing.assert_allclose(memory.score(M[:7]), 0.0, atol=1e-12)


@pytest.mark.parametrize("metric", METRICS)
def test_empty_memory_finds_everything_novel(metric: str) -> None:
    memory = NoveltyMemory(10, 3, metric)
    assert len(memory) == 0
    assert memory.score(np.zeros((4, 3))).tolist() == [1.0, 1.0, 1.0, 1.0]
    assert memory.score(np.zeros((0, 3))).shape == (0,)


@pytest.mark.parametrize("metric", METRICS)
def test_scores_stay_in_unit_interval(metric: str) -> None:
    rng = np.random.default_rng(5)
    memory = NoveltyMemory(64, 3, metric)
    memory.add(rng.normal(size=(64, 3)))
    s = memory.score(np.vstack([rng.normal(size=(100, 3)) * 1e6, np.zeros((1, 3))]))
    assert np.all((s >= 0.0) & (s <= 1.0))


def test_memory_never_holds_more_than_its_capacity() -> None:
    memory = NoveltyMemory(8, 2, "euclidean")
    for n in (3, 4, 5, 20):
        memory.add(np.ones((n, 2)))
        assert len(memory) <= 8
    assert len(memory) == 8
    assert memory.capacity == 8


@pytest.mark.parametrize("batches", [[5, 5, 5], [1] * 17, [20], [3, 11, 2]])
def test_memory_evicts_the_oldest_vectors_first(batches: list[int]) -> None:
    memory = NoveltyMemory(8, 1, "euclidean")
    counter = 0
    for n in batches:
        memory.add(np.arange(counter, counter + n, dtype=float)[:, None])
        counter += n
    kept = memory.vectors()[:, 0].tolist()
    assert kept == list(range(max(0, counter - 8), counter))


def test_an_evicted_vector_is_novel_again() -> None:
    memory = NoveltyMemory(2, 1, "euclidean")
    memory.add(np.array([[0.0], [10.0], [20.0]]))  # [0] is evicted
    assert memory.score(np.array([[0.0]]))[0] > 0.0
    assert memory.score(np.array([[20.0]]))[0] == 0.0


def test_large_batches_are_scored_in_chunks_with_the_same_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(6)
    M, Q = rng.normal(size=(30, 4)), rng.normal(size=(25, 4))
    memory = NoveltyMemory(30, 4, "euclidean", reservoir=30, k=3)
    memory.add(M)
    memory.observe(M)
    whole = memory.score(Q), memory.density_weight(Q)
    monkeypatch.setattr("streamer.gates.novelty._CHUNK_CELLS", 60)  # 2 rows per chunk
    np.testing.assert_allclose(memory.score(Q), whole[0], rtol=1e-12)
    np.testing.assert_allclose(memory.density_weight(Q), whole[1], rtol=1e-12)


@pytest.mark.parametrize("metric", METRICS)
def test_density_weight_prefers_typical_items_to_outliers(metric: str) -> None:
    rng = np.random.default_rng(7)
    memory = NoveltyMemory(10, 2, metric, reservoir=200, k=5)
    memory.observe(np.array([1.0, 1.0]) + rng.normal(scale=0.05, size=(200, 2)))
    typical, outlier = np.array([[1.0, 1.0]]), np.array([[-1.0, 0.2]])
    weights = memory.density_weight(np.vstack([typical, outlier]))
    assert weights[0] > weights[1]
    assert np.all((weights >= 0.0) & (weights <= 1.0))


def test_density_weight_is_the_mean_similarity_to_the_k_nearest() -> None:
    rng = np.random.default_rng(8)
    R, Q = rng.normal(size=(40, 3)), rng.normal(size=(6, 3))
    memory = NoveltyMemory(5, 3, "cosine", reservoir=40, k=4)
    memory.observe(R)
    Rn = R / np.linalg.norm(R, axis=1, keepdims=True)
    Qn = Q / np.linalg.norm(Q, axis=1, keepdims=True)
    top4 = np.sort(Qn @ Rn.T, axis=1)[:, -4:]
    np.testing.assert_allclose(memory.density_weight(Q), ((1.0 + top4) / 2.0).mean(axis=1))


def test_density_weight_is_neutral_while_the_reservoir_is_empty() -> None:
    memory = NoveltyMemory(5, 2, reservoir=10)
    assert memory.density_weight(np.ones((2, 2))).tolist() == [1.0, 1.0]


def test_density_weight_without_a_reservoir_says_how_to_enable_it() -> None:
    with pytest.raises(ValueError, match="reservoir=N"):
        NoveltyMemory(5, 2).density_weight(np.ones((1, 2)))


def test_wrong_vector_length_is_reported_with_the_expected_shape() -> None:
    memory = NoveltyMemory(5, 3)
    with pytest.raises(ValueError, match=r"\(batch, 3\).*got shape \(2, 4\)"):
        memory.add(np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"x\[None, :\]"):
        memory.score(np.ones(3))


def test_unknown_metric_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="cosine, euclidean"):
        NoveltyMemory(5, 3, metric="manhattan")
