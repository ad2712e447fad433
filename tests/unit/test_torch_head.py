"""TorchHead: one batched pass for the ensemble and its scores, online learning, safe state.

Precision: these tests run on the CPU, where ``dtype="auto"`` computes in float64; scores are
compared with the numpy reference within 1e-12 there, and within 1e-5 with ``dtype="float32"``
(what CUDA uses by default).
"""

from __future__ import annotations

import json
import pickle
import struct
from collections.abc import Sequence

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the torch head needs the torch extra: pip install 'streamer[torch]'")

from streamer.core.model import Label  # noqa: E402
from streamer.core.sampler import Sampler  # noqa: E402
from streamer.core.scores import SCORES  # noqa: E402
from streamer.gates.committee import mean_kl, vote_entropy  # noqa: E402
from streamer.gates.novelty import NoveltyMemory  # noqa: E402
from streamer.models import build_model  # noqa: E402
from streamer.models.torch_head import _MAGIC, TorchHead  # noqa: E402
from streamer.prequential import prequential  # noqa: E402
from streamer.simulate import run_simulation  # noqa: E402

KEY = b"torch-head-test-key"
DIGITS = "digits_frames.csv.gz"


def blobs(n: int = 300, n_classes: int = 3, d: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    centres = rng.normal(0.0, 3.0, (n_classes, d))
    return centres[y] + rng.normal(0.0, 1.0, (n, d)), y


def trained(n: int = 200, **options: object) -> tuple[TorchHead, np.ndarray, np.ndarray]:
    X, y = blobs(n)
    options = {"hidden": 16, "heads": 4, "memory": 50, **options}
    head = TorchHead(str(options.pop("kind", "mlp")), **options)
    for i in range(0, n, 25):
        head.observe(X[i : i + 25])
        head.learn(X[i : i + 25], y[i : i + 25])
    return head, X, y


def numpy_members(head: TorchHead, X: np.ndarray) -> np.ndarray:
    """Each member computed alone, in numpy, from the head's weights and scaler."""
    p = {name: t.numpy() for name, t in head._params.items()}
    var = head._m2.numpy() / head._count
    Z = (X - head._mean.numpy()) / np.where(var > 0, np.sqrt(var), 1.0)
    out = []
    for k in range(head.config.heads):
        if "w" in p:
            logits = Z @ p["w"][k] + p["b"][k]
        else:
            logits = np.maximum(Z @ p["w1"][k] + p["b1"][k], 0.0) @ p["w2"][k] + p["b2"][k]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        out.append(e / e.sum(axis=1, keepdims=True))
    return np.stack(out)


# -- the ensemble and its scores -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_the_batched_ensemble_equals_each_member_computed_alone(kind: str) -> None:
    head, X, _ = trained(kind=kind)
    np.testing.assert_allclose(head.committee_proba(X), numpy_members(head, X), rtol=0, atol=1e-12)
    np.testing.assert_allclose(head.predict_proba(X), numpy_members(head, X).mean(axis=0), rtol=0, atol=1e-12)


def test_members_start_and_stay_different() -> None:
    head, X, _ = trained()
    members = head.committee_proba(X)
    assert not np.allclose(members[0], members[1])
    assert head.score_batch(X, terms=["kl"])["kl"].max() > 0.0


@pytest.mark.parametrize(("dtype", "atol"), [("auto", 1e-12), ("float32", 1e-5)])
def test_scores_equal_the_numpy_reference(dtype: str, atol: float) -> None:
    head, X, _ = trained(dtype=dtype)
    head.remember(X[:30])
    scored = head.score_batch(X[100:])
    proba, members = scored["proba"], head.committee_proba(X[100:])
    np.testing.assert_allclose(proba, head.predict_proba(X[100:]), rtol=0, atol=1e-12)
    for name in ("margin", "entropy", "least-confidence"):
        np.testing.assert_allclose(scored[name], SCORES[name](proba), rtol=0, atol=atol)
    np.testing.assert_allclose(scored["disagreement"], vote_entropy(members), rtol=0, atol=atol)
    np.testing.assert_allclose(scored["kl"], mean_kl(members), rtol=0, atol=atol)
    memory = NoveltyMemory(50, X.shape[1], "cosine")
    memory.add(X[:30])
    np.testing.assert_allclose(scored["novelty"], memory.score(X[100:]), rtol=0, atol=atol)


def test_score_batch_computes_only_the_terms_asked_for() -> None:
    head, X, _ = trained()
    assert set(head.score_batch(X[:5], terms=["margin", "density"])) == {"proba", "margin"}


def test_scores_before_two_classes_are_known_follow_the_numpy_conventions() -> None:
    head = TorchHead("mlp", hidden=4, heads=3)
    head.learn(np.ones((2, 3)), ["only", "only"])
    scored = head.score_batch(np.ones((2, 3)))
    assert scored["margin"].tolist() == [1.0, 1.0] and scored["kl"].tolist() == [0.0, 0.0]
    assert scored["novelty"].tolist() == [1.0, 1.0]  # nothing remembered yet


# -- the novelty bank -------------------------------------------------------------------------


def test_fifo_bank_is_bounded_and_drops_the_oldest_rows_first() -> None:
    head = TorchHead("linear", memory=3, memory_policy="fifo")
    rows = np.arange(1.0, 11.0)[:, None] * np.eye(10)  # ten orthogonal rows, lengths 1..10
    head.remember(rows[:2])
    head.remember(rows[2:5])
    assert head.memory_size == 3
    np.testing.assert_allclose(head.memory_rows(), np.eye(10)[2:5])
    head.remember(rows[5:10])  # more rows than the capacity at once: the newest three survive
    np.testing.assert_allclose(head.memory_rows(), np.eye(10)[7:10])


def test_reservoir_bank_is_bounded_and_keeps_early_rows_as_often_as_late_ones() -> None:
    kept = np.zeros(40)
    for seed in range(300):
        head = TorchHead("linear", memory=4, memory_policy="reservoir", seed=seed)
        for start in range(0, 40, 7):
            head.remember(np.eye(40)[start : start + 7])
        assert head.memory_size == 4
        kept += head.memory_rows().sum(axis=0)  # one-hot rows: which of the 40 were kept
    # each row is kept with probability 4/40: 30 times out of 300 on average
    assert kept.sum() == 4 * 300
    assert abs(kept[:20].mean() - kept[20:].mean()) < 6.0
    assert kept.min() > 10


def test_zero_capacity_bank_offers_no_novelty() -> None:
    head = TorchHead("linear", memory=0)
    head.remember(np.ones((2, 3)))
    assert "novelty" not in head.score_terms and head.memory_size == 0


# -- learning ---------------------------------------------------------------------------------


def test_new_classes_grow_the_output_layer_at_their_sorted_place() -> None:
    head = TorchHead("mlp", hidden=8, heads=2, replay=10)
    X, _ = blobs(3)
    head.learn(X[:1], [5])
    head.learn(X[1:2], [9])
    head.learn(X[2:3], [1])
    assert head.classes == [1, 5, 9]
    assert head._params["w2"].shape == (2, 8, 3)
    # the replayed rows still carry their own labels after the columns moved
    _, labels = head.replay_rows()
    assert labels == [5, 9, 1]


def test_labels_that_cannot_be_sorted_keep_their_order_of_appearance() -> None:
    head = TorchHead("linear", heads=2)
    head.learn(np.zeros((3, 2)), ["b", 3, "a"])
    assert head.classes == ["b", 3, "a"]


def test_replay_buffer_is_bounded_and_keeps_the_newest_rows() -> None:
    head = TorchHead("linear", heads=2, replay=4)
    X = np.arange(20.0).reshape(10, 2)
    head.learn(X, list(range(10)))
    rows, labels = head.replay_rows()
    np.testing.assert_array_equal(rows, X[6:])
    assert labels == [6, 7, 8, 9]


def test_learns_a_separable_stream() -> None:
    head, X, y = trained(n=300)
    predicted = np.array(head.classes)[head.predict_proba(X).argmax(axis=1)]
    assert np.mean(predicted == y) > 0.9


def test_same_seed_same_model_other_seed_other_model() -> None:
    a, X, _ = trained(seed=3)
    b, _, _ = trained(seed=3)
    c, _, _ = trained(seed=4)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert not np.allclose(a.predict_proba(X), c.predict_proba(X))


def test_device_auto_is_cuda_only_when_torch_sees_a_gpu() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert TorchHead("linear").device.type == expected


def test_rows_with_nan_are_refused() -> None:
    head = TorchHead("linear")
    with pytest.raises(ValueError, match="NaN or infinite"):
        head.learn(np.array([[1.0, np.nan]]), [0])


def test_labels_of_other_types_are_refused() -> None:
    with pytest.raises(ValueError, match="labels must be int or str"):
        TorchHead("linear").learn(np.zeros((1, 2)), [(1, 2)])


# -- state ------------------------------------------------------------------------------------


def test_state_round_trip_reads_no_pickle(monkeypatch: pytest.MonkeyPatch) -> None:
    head, X, y = trained()
    head.remember(X[:20])
    data = head.to_bytes(KEY)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("pickle was used to read a torch head")

    for name in ("loads", "load", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(torch, "load", refuse)
    restored = TorchHead.from_bytes(data, KEY)
    np.testing.assert_array_equal(restored.predict_proba(X), head.predict_proba(X))
    np.testing.assert_array_equal(restored.score_batch(X)["novelty"], head.score_batch(X)["novelty"])
    # after the magic and the signature: a length, then a JSON header (no pickle opcodes)
    payload = data[len(_MAGIC) + 32 :]
    (size,) = struct.unpack_from("<Q", payload)
    header = json.loads(payload[8 : 8 + size])
    assert header["meta"]["classes"] == [0, 1, 2]


def test_round_trip_keeps_the_type_of_every_label() -> None:
    head = TorchHead("linear", heads=2)
    head.learn(np.zeros((3, 2)), ["7", 7, True])
    restored = TorchHead.from_bytes(head.to_bytes(KEY), KEY)
    assert restored.classes == head.classes
    assert [type(c) for c in restored.classes] == [type(c) for c in head.classes]


def test_pickling_stores_the_safe_format_and_restores_the_same_model() -> None:
    head, X, _ = trained()
    data = pickle.dumps(head)
    assert b"torch._utils" not in data and b"_rebuild_tensor" not in data
    np.testing.assert_array_equal(pickle.loads(data).predict_proba(X), head.predict_proba(X))


def test_tampered_state_is_refused_before_it_is_parsed() -> None:
    head, _, _ = trained(n=50)
    data = bytearray(head.to_bytes(KEY))
    data[len(_MAGIC) + 40] ^= 0x01  # inside the JSON header
    with pytest.raises(ValueError, match="integrity"):
        TorchHead.from_bytes(bytes(data), KEY)


# -- the sampler ------------------------------------------------------------------------------


class NumpyScored:
    """The same head without ``score_batch``: the sampler computes every term in numpy."""

    def __init__(self, head: TorchHead) -> None:
        self._head = head

    @property
    def classes(self) -> list[Label]:
        return self._head.classes

    @property
    def n_features(self) -> int | None:
        return self._head.n_features

    @property
    def version(self) -> int:
        return self._head.version

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self._head.predict_proba(X)

    def committee_proba(self, X: np.ndarray) -> np.ndarray:
        return self._head.committee_proba(X)

    def observe(self, X: np.ndarray) -> None:
        self._head.observe(X)

    def learn(self, X: np.ndarray, y: Sequence[Label]) -> None:
        self._head.learn(X, y)


def run_sampler(sampler: Sampler, X: np.ndarray, y: np.ndarray) -> list:
    batches = ((X[i : i + 20], y[i : i + 20]) for i in range(0, len(y), 20))
    return prequential(sampler, batches, ids=False, keep_decisions=True).decisions


@pytest.mark.parametrize("policy", ["margin or novelty or disagreement", "entropy and kl", "least-confidence * density"])
def test_sampler_with_device_scores_decides_as_with_numpy_scores(policy: str) -> None:
    X, y = blobs(400)
    options = {"budget": 0.2, "policy": policy, "novelty_metric": "cosine", "novelty_capacity": 64, "seed": 1}
    device = Sampler(TorchHead("mlp", hidden=16, heads=4, memory=64, seed=2), **options)
    numpy = Sampler(NumpyScored(TorchHead("mlp", hidden=16, heads=4, memory=64, seed=2)), **options)
    for a, b in zip(run_sampler(device, X, y), run_sampler(numpy, X, y), strict=True):
        assert a.reason == b.reason
        np.testing.assert_array_equal(a.ask, b.ask)
        assert a.scores.keys() == b.scores.keys()
        for name in a.scores:
            np.testing.assert_allclose(a.scores[name], b.scores[name], rtol=0, atol=1e-12)
    assert device.snapshot()["asked"] > 40


def test_sampler_scores_a_batch_in_one_call_and_remembers_what_it_asks(monkeypatch: pytest.MonkeyPatch) -> None:
    head, X, _ = trained()
    calls: list[str] = []
    for name in ("predict_proba", "committee_proba", "score_batch"):
        original = getattr(head, name)
        monkeypatch.setattr(head, name, lambda *a, _f=original, _n=name, **k: calls.append(_n) or _f(*a, **k))
    sampler = Sampler(head, budget=0.5, policy="margin or novelty or kl", explore=0.0)
    decisions = sampler.decide(X[:40])
    assert calls == ["score_batch"]
    assert head.memory_size == int(decisions.ask.sum()) > 0


def test_build_model_spec_runs_in_the_sampler() -> None:
    X, y = blobs(200)
    sampler = Sampler(build_model("torch:linear(heads=3)", seed=0), budget=0.3, policy="margin or disagreement")
    run_sampler(sampler, X, y)
    assert sampler.snapshot()["asked"] > 0 and sampler.model.version > 0


def test_a_service_checkpoint_of_the_sampler_restores_the_head() -> None:
    from streamer.store.checkpoint import Checkpoint, dumps, loads

    X, y = blobs(200)
    sampler = Sampler(TorchHead("mlp", hidden=8, heads=3, memory=32), budget=0.3, policy="margin or novelty")
    run_sampler(sampler, X[:100], y[:100])
    restored = loads(dumps(Checkpoint(sampler), KEY), KEY).sampler
    a, b = sampler.decide(X[100:]), restored.decide(X[100:])
    np.testing.assert_array_equal(a.proba, b.proba)
    np.testing.assert_array_equal(a.scores["novelty"], b.scores["novelty"])


# -- label efficiency -------------------------------------------------------------------------


def test_beats_random_sampling_on_the_digits() -> None:
    from streamer.data import bundled_stream

    digits = bundled_stream(DIGITS)
    # 900 items, budget 0.1, three seeds: margin 0.788/0.769/0.742 vs random 0.666/0.676/0.679
    margin, random = [], []
    for seed in range(3):
        for policy, out in (("margin", margin), ("random", random)):
            result = run_simulation(digits, budget=0.1, model="torch:mlp", policy=policy,
                                    seed=seed, max_items=900, batch_size=10)
            out.append(result["accuracy"])
    assert np.mean(margin) > np.mean(random) + 0.03
    assert all(m > r for m, r in zip(margin, random, strict=True))
