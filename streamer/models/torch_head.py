"""``TorchHead``: an ensemble of linear or small MLP heads in PyTorch, scored in one batched pass.

For ``d``-dimensional inputs (embeddings from an upstream encoder, or plain features): ``K``
heads whose weights are stacked as ``(K, d, h)`` tensors, so that the class probabilities of
every member, the uncertainty scores, the committee disagreement and the novelty of a whole
micro-batch come out of one pass on the device (:meth:`TorchHead.score_batch`), with no Python
loop over members or items. Only ``(B, C)`` probabilities and ``(B,)`` scores go back to the
host.

Spec grammar (what :func:`streamer.models.build_model` and ``--model`` accept)::

    spec    := "torch:" kind [ "(" [ option { "," option } ] ")" ]
    kind    := "linear" | "mlp"
    option  := name "=" literal          # a Python literal: number, string, bool

    "torch:linear"
    "torch:mlp(hidden=128, heads=8, lr=0.01, replay=256, memory=10000, device='auto')"

Options (defaults from :class:`HeadConfig`): ``hidden`` (units of the MLP's hidden layer, mlp
only), ``heads`` (members ``K``), ``lr``, ``optimizer`` (``'adam'`` or ``'sgd'``), ``steps``
(gradient steps per labelled row), ``replay`` (capacity of the replay buffer, 0 = off),
``replay_batch`` (replayed rows mixed into each step), ``bootstrap`` (Poisson weights per
member), ``weight_decay``, ``memory`` (capacity of the novelty bank, 0 = no novelty),
``memory_policy`` (``'fifo'`` or ``'reservoir'``), ``device`` (``'auto'``, ``'cpu'``,
``'cuda'``, ``'cuda:1'``...), ``dtype`` (``'auto'``, ``'float32'``, ``'float64'``), ``seed``
(else the ``seed`` given to ``build_model``).

How it learns and scores:

- **Members.** Each member has its own initial weights and sees every labelled row with its own
  Poisson(1) weight (online bagging, Oza & Russell 2001), so the committee disagrees where the
  data leave room for it. ``predict_proba`` is the mean of the members' softmax outputs.
- **Online updates.** Each labelled row gets ``steps`` gradient steps (Adam or SGD) on a
  minibatch of that row plus ``replay_batch`` rows drawn at random from a FIFO buffer of the
  last ``replay`` labelled rows, against forgetting. Rows are learned one after the other, so
  a batch of labels teaches exactly what the same labels one at a time do.
- **Standardisation.** A running mean and variance of every observed item (Chan et al.'s
  parallel update, kept as tensors, updated in :meth:`TorchHead.observe`) standardise the
  inputs of the heads; a feature with zero variance is only centred.
- **Classes** appear over time: the output layer grows by one column per new class, inserted
  at its place in sorted order (order of appearance when labels cannot be compared), as
  :class:`~streamer.models.river.RiverModel` orders them. Labels keep their type (int or str).
- **Scores** (:meth:`TorchHead.score_batch`, keys named like the policy terms of
  :mod:`streamer.core.policy`): ``proba``, ``margin``, ``entropy``, ``least-confidence`` (as
  :mod:`streamer.core.scores`), ``disagreement`` (vote entropy) and ``kl`` (mean KL to the
  consensus, both as :mod:`streamer.gates.committee`), and ``novelty`` = ``(1 - max cosine
  similarity) / 2`` against a bounded device bank of the rows given to
  :meth:`TorchHead.remember` (the requested items) -- the scale of
  :class:`~streamer.gates.novelty.NoveltyMemory` with ``metric="cosine"``, 1.0 while the bank
  is empty. The :class:`~streamer.core.sampler.Sampler` uses these arrays instead of computing
  the same terms in numpy, and remembers the rows it asks for.
- **Precision.** ``dtype="auto"`` computes in float64 on the CPU (scores equal the numpy
  reference within 1e-12, a batch equals its rows one by one) and in float32 on CUDA (within
  about 1e-5 of the reference); an explicit ``dtype`` overrides it.
- **State** (:meth:`TorchHead.to_bytes`) is a JSON header (config, classes, version, counters,
  random generator states) and the tensors as raw little-endian bytes, signed with
  HMAC-SHA256 under the caller's key and verified before anything is parsed. No pickle: the
  bytes never run code when read. Pickling a ``TorchHead`` (the service's signed checkpoints
  pickle the whole sampler) stores the same bytes, so it moves between CPU and CUDA machines.

Label efficiency (``streamer simulate``, prequential accuracy, mean of seeds 0-4; random = the
same head with labels chosen at random at the same budget):

=================================  ===========  ===========
``digits_frames.csv.gz``           budget 0.1   budget 0.2
=================================  ===========  ===========
``torch:mlp``, policy ``margin``   0.866        0.925
``torch:mlp``, policy ``random``   0.782        0.865
river ``LOGISTIC_MODEL``, margin    0.829        0.895
=================================  ===========  ===========

The defaults were tuned on these digits (seeds 0-4, policy ``margin``): more learning per label
mattered most -- ``steps`` 1 / 2 / 4 / 8 gave 0.808 / 0.844 / 0.866 / 0.871 at budget 0.1 --
while ``hidden`` 64-256, ``heads`` 4-8 and ``replay_batch`` 16-32 moved it by less than 0.01;
``lr`` 0.002 / 0.005 / 0.01 gave 0.762 / 0.808 / 0.819 at one step. Policies at budget 0.1:
margin 0.866, margin or novelty 0.853, entropy 0.846, kl 0.839. The same defaults, not tuned
there, on ``segment`` (seeds 0-2) gave 0.874 vs random 0.832 at 0.1 (0.918 vs 0.879 at 0.2) and
on ``phishing`` 0.875 vs 0.840 (0.892 vs 0.852).

Examples
--------
>>> import numpy as np, pytest
>>> _ = pytest.importorskip("torch")  # the torch extra: pip install 'streamer[torch]'
>>> head = TorchHead("mlp", hidden=16, heads=4, seed=0)
>>> X = np.array([[0.0, 0.0], [1.0, 1.0], [0.1, 0.0], [0.9, 1.0]])
>>> head.observe(X)
>>> head.learn(X, ["cat", "dog", "cat", "dog"])
>>> head.classes, head.version
(['cat', 'dog'], 1)
>>> head.committee_proba(X).shape  # (members, items, classes)
(4, 4, 2)
>>> sorted(head.score_batch(X[:2]))
['disagreement', 'entropy', 'kl', 'least-confidence', 'margin', 'novelty', 'proba']
"""

from __future__ import annotations

import ast
import difflib
import json
import logging
import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

try:
    import torch
except ImportError:  # the torch extra is not installed: TorchHead() says how to add it
    torch = None  # type: ignore[assignment]

from streamer.core.checks import as_batch
from streamer.core.model import Label, with_class
from streamer.signed import seal, unseal

__all__ = [
    "INSTALL_HINT",
    "SCORE_TERMS",
    "HeadConfig",
    "TorchHead",
    "parse_spec",
]

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'streamer[torch]'"
SCORE_TERMS = ("margin", "entropy", "least-confidence", "disagreement", "kl", "novelty")
KINDS = ("linear", "mlp")
OPTIMIZERS = ("adam", "sgd")
MEMORY_POLICIES = ("fifo", "reservoir")

_MAGIC = b"streamer.torch.v1\n"
_ADAM_BETAS = (0.9, 0.999)
_ADAM_EPS = 1e-8
# Most bytes of (query x bank) similarities computed at once, on a CPU and on a GPU.
_CPU_BLOCK_BYTES = 64 * 2**20
_CUDA_BLOCK_BYTES = 2**30
_FILE_DTYPES = {"<f4": np.float32, "<f8": np.float64, "<i8": np.int64}


@dataclass(frozen=True)
class HeadConfig:
    """Everything that defines a :class:`TorchHead` before it has seen data.

    Parameters
    ----------
    kind
        ``"linear"`` (a softmax regression per member) or ``"mlp"`` (one hidden ReLU layer).
    hidden
        Units of the hidden layer (``mlp`` only).
    heads
        Members of the ensemble (``K``).
    lr
        Learning rate.
    optimizer
        ``"adam"`` or ``"sgd"``.
    steps
        Gradient steps per labelled row.
    replay
        Capacity of the buffer of recent labelled rows (0: no replay).
    replay_batch
        Rows drawn from the buffer (with replacement) into each step.
    bootstrap
        Weigh each row by a Poisson(1) draw per member (online bagging); ``False``: weight 1.
    weight_decay
        L2 penalty added to every gradient.
    memory
        Capacity of the novelty bank (0: no ``novelty`` score).
    memory_policy
        ``"fifo"`` keeps the newest rows, ``"reservoir"`` a uniform sample of all remembered.
    device
        ``"auto"`` (CUDA when available, else CPU) or a torch device string.
    dtype
        ``"auto"`` (float64 on CPU, float32 on CUDA), ``"float32"`` or ``"float64"``.
    seed
        Seeds the initial weights, the replay draws, the bootstrap weights and the reservoir.
    """

    kind: str = "mlp"
    hidden: int = 128
    heads: int = 8
    lr: float = 0.005
    optimizer: str = "adam"
    steps: int = 4
    replay: int = 256
    replay_batch: int = 16
    bootstrap: bool = True
    weight_decay: float = 0.0
    memory: int = 10_000
    memory_policy: str = "fifo"
    device: str = "auto"
    dtype: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        _choice("kind", self.kind, KINDS)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("memory_policy", self.memory_policy, MEMORY_POLICIES)
        _choice("dtype", self.dtype, ("auto", "float32", "float64"))
        for name, low in (("hidden", 1), ("heads", 1), ("steps", 1), ("replay", 0),
                          ("replay_batch", 0), ("memory", 0), ("seed", 0)):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= low):
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        for name in ("lr", "weight_decay"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and not isinstance(value, bool)
                    and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not isinstance(self.bootstrap, bool):
            raise ValueError(f"bootstrap must be True or False, got {self.bootstrap!r}")
        if not (isinstance(self.device, str) and self.device):
            raise ValueError(f"device must be 'auto' or a torch device such as 'cpu', got {self.device!r}")

    def spec(self) -> str:
        """The spec string of this config: the kind and every option that is not the default."""
        default = HeadConfig(kind=self.kind)
        options = [
            f"{f.name}={getattr(self, f.name)!r}"
            for f in fields(self)
            if f.name not in ("kind", "seed") and getattr(self, f.name) != getattr(default, f.name)
        ]
        return f"torch:{self.kind}" + (f"({', '.join(options)})" if options else "")


OPTION_NAMES = tuple(f.name for f in fields(HeadConfig) if f.name != "kind")


def parse_spec(spec: str, *, seed: int = 0) -> HeadConfig:
    """Read a ``torch:...`` spec (grammar in the module docstring) into a :class:`HeadConfig`.

    Parameters
    ----------
    spec
        E.g. ``"torch:linear"`` or ``"torch:mlp(hidden=64, heads=4)"``.
    seed
        Used unless the spec sets ``seed``.

    Returns
    -------
    HeadConfig
        Nothing is evaluated: option values are Python literals.

    Examples
    --------
    >>> parse_spec("torch:mlp(hidden=64, heads=4)", seed=3).heads
    4
    >>> parse_spec("torch:linear").kind
    'linear'
    >>> parse_spec("torch:mlp(heads=4, hiden=3)")
    Traceback (most recent call last):
    ...
    ValueError: torch spec 'torch:mlp(heads=4, hiden=3)': unknown option 'hiden'; did you mean hidden?
    """
    text = spec.strip() if isinstance(spec, str) else ""
    example = "e.g. 'torch:mlp(hidden=128, heads=8)'"
    if not text.startswith("torch:"):
        raise ValueError(f"a torch spec starts with 'torch:', got {spec!r}; {example}")
    try:
        node = ast.parse(text[len("torch:"):].strip(), mode="eval").body
    except SyntaxError as exc:
        raise ValueError(f"cannot parse torch spec {spec!r}: {exc.msg}; {example}") from None
    call = node if isinstance(node, ast.Call) else None
    name = call.func if call is not None else node
    if not (isinstance(name, ast.Name) and name.id in KINDS):
        raise ValueError(f"torch spec {spec!r}: the head must be one of {', '.join(KINDS)}; {example}")
    options: dict[str, Any] = {"seed": seed}
    given: set[str] = set()
    for keyword in call.keywords if call is not None else []:
        key = keyword.arg
        if key is None:
            raise ValueError(f"torch spec {spec!r}: **options are not supported")
        if key not in OPTION_NAMES:
            close = difflib.get_close_matches(key, OPTION_NAMES, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; options: {', '.join(OPTION_NAMES)}"
            raise ValueError(f"torch spec {spec!r}: unknown option {key!r}{hint}")
        try:
            options[key] = ast.literal_eval(keyword.value)
        except ValueError:
            raise ValueError(
                f"torch spec {spec!r}: the value of {key!r} must be a literal (number, string, bool)"
            ) from None
        given.add(key)
    if call is not None and call.args:
        raise ValueError(f"torch spec {spec!r}: pass options by keyword, {example}")
    if name.id == "linear" and "hidden" in given:
        raise ValueError(f"torch spec {spec!r}: 'hidden' applies to torch:mlp only")
    return HeadConfig(kind=name.id, **options)


class TorchHead:
    """``K`` linear or MLP heads over ``d``-dimensional inputs, as one batched PyTorch model.

    Parameters
    ----------
    kind
        ``"linear"`` or ``"mlp"``.
    spec
        The spec string the model was built from (kept for display); derived when omitted.
    **options
        The other fields of :class:`HeadConfig` (``hidden``, ``heads``, ``lr``, ``replay``,
        ``memory``, ``device``, ``seed``...).

    Raises
    ------
    ImportError
        PyTorch is not installed (``pip install 'streamer[torch]'``).
    ValueError
        An option is out of range, or ``device`` names a device this machine does not have.

    Examples
    --------
    >>> import numpy as np, pytest
    >>> _ = pytest.importorskip("torch")
    >>> head = TorchHead("linear", heads=3, memory=100)
    >>> head.predict_proba(np.zeros((2, 5))).shape  # no class known yet
    (2, 0)
    >>> head.learn(np.eye(5)[:3], [2, 0, 1])
    >>> head.classes
    [0, 1, 2]
    >>> head.remember(np.eye(5)[:1])
    >>> head.score_batch(np.eye(5)[:2], terms=["novelty"])["novelty"].tolist()
    [0.0, 0.5]
    """

    def __init__(self, kind: str = "mlp", *, spec: str | None = None, **options: Any) -> None:
        if torch is None:
            raise ImportError(f"the torch head needs PyTorch, which is not installed: {INSTALL_HINT}")
        unknown = sorted(set(options) - set(OPTION_NAMES))
        if unknown:
            raise ValueError(f"unknown TorchHead option(s) {', '.join(unknown)}; options: {', '.join(OPTION_NAMES)}")
        self.config = HeadConfig(kind=kind, **options)
        self.spec = spec or self.config.spec()
        self.device = _resolve_device(self.config.device)
        self.dtype = _resolve_dtype(self.config.dtype, self.device)
        self._np_dtype = np.float64 if self.dtype == torch.float64 else np.float32
        self.classes: list[Label] = []
        self.n_features: int | None = None
        self.version = 0
        seed = self.config.seed
        self._rng = np.random.default_rng([seed, 0])  # initial weights, replay draws, bootstrap
        self._bank_rng = np.random.default_rng([seed, 1])  # reservoir replacement
        self._params: dict[str, torch.Tensor] = {}
        self._moments: dict[str, torch.Tensor] = {}  # Adam: "m.<param>" and "v.<param>"
        self._t = 0  # Adam steps taken
        self._count = 0  # items observed by the scaler
        self._mean: torch.Tensor | None = None
        self._m2: torch.Tensor | None = None
        self._replay_x: torch.Tensor | None = None
        self._replay_y: torch.Tensor | None = None
        self._replay_size = 0
        self._replay_next = 0
        self._bank: torch.Tensor | None = None  # allocated by the first remember()
        self._bank_size = 0
        self._bank_next = 0
        self._bank_seen = 0

    @classmethod
    def from_spec(cls, spec: str, *, seed: int = 0) -> TorchHead:
        """Build a head from a ``torch:...`` spec (grammar in the module docstring)."""
        config = parse_spec(spec, seed=seed)
        options = {k: v for k, v in asdict(config).items() if k != "kind"}
        return cls(config.kind, spec=spec.strip(), **options)

    def __repr__(self) -> str:
        return (f"TorchHead({self.spec!r}, classes={self.classes}, version={self.version}, "
                f"device={str(self.device)!r})")

    @property
    def score_terms(self) -> tuple[str, ...]:
        """The policy terms :meth:`score_batch` computes (``novelty`` only with a bank)."""
        return SCORE_TERMS if self.config.memory else SCORE_TERMS[:-1]

    @property
    def memory_size(self) -> int:
        """Rows in the novelty bank now."""
        return self._bank_size

    # -- the Model protocol -------------------------------------------------------------------

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Return ``(B, len(classes))`` probabilities (the members' mean); ``(B, 0)`` before any
        label was seen."""
        Xt = self._tensor(self._array(X))
        with torch.no_grad():
            return _host_proba(self._members(Xt).mean(dim=0))

    def committee_proba(self, X: np.ndarray) -> np.ndarray:
        """Return the ``(K, B, len(classes))`` probabilities of the ``K`` members.

        Nothing learns: the model and its random state do not change.
        """
        Xt = self._tensor(self._array(X))
        with torch.no_grad():
            return _host_proba(self._members(Xt))

    def observe(self, X: np.ndarray) -> None:
        """Update the running mean and variance that standardise the inputs, from every item."""
        Xt = self._tensor(self._array(X))
        b = Xt.shape[0]
        if b == 0:
            return
        assert self._mean is not None and self._m2 is not None
        with torch.no_grad():
            n = self._count
            mean_b = Xt.mean(dim=0)
            m2_b = ((Xt - mean_b) ** 2).sum(dim=0)
            delta = mean_b - self._mean
            total = n + b
            self._mean = self._mean + delta * (b / total)
            self._m2 = self._m2 + m2_b + delta**2 * (n * b / total)
            self._count = total

    def learn(self, X: np.ndarray, y: Sequence[Label]) -> None:
        """Learn from labelled rows, one after the other (see the module docstring).

        Raises
        ------
        ValueError
            Rows and labels differ in number, or a label is not an int, str, bool or float.
        """
        arr = self._array(X)
        labels = [_plain(label) for label in y]
        if len(labels) != arr.shape[0]:
            raise ValueError(f"got {arr.shape[0]} rows but {len(labels)} labels; pass one label per row")
        if not labels:
            return
        Xt = self._tensor(arr)
        for i, label in enumerate(labels):
            c = self._add_class(label)
            row = Xt[i : i + 1]
            if len(self.classes) >= 2:  # one class: a softmax over one column has nothing to learn
                for _ in range(self.config.steps):
                    self._step(row, c)
            self._push_replay(row, c)
        self.version += 1

    def to_bytes(self, key: bytes, *, weights_only: bool = False) -> bytes:
        """Serialize the state (no pickle), signed with HMAC-SHA256 under ``key``.

        ``weights_only=True`` is the form a learner publishes to scoring replicas: what it
        learned (weights, optimizer state, scaler, replay buffer, classes) without the novelty
        bank, which holds the rows *this* process asked for -- a scorer keeps its own across a
        swap (:meth:`adopt_local_state`). Its size does not grow with the rows decided. The
        default, the full state, is what a checkpoint of this process keeps.
        """
        return seal(_MAGIC, key, self._payload(weights_only=weights_only))

    @classmethod
    def from_bytes(cls, data: bytes, key: bytes, *, device: str | None = None) -> TorchHead:
        """Restore a head written by :meth:`to_bytes` with the same ``key``.

        Parameters
        ----------
        data, key
            The bytes and the key they were signed with.
        device
            Override the saved ``device`` option (e.g. ``"cpu"`` to read a GPU model here).

        Raises
        ------
        ValueError
            Not a torch head checkpoint, or the signature does not match (modified, truncated,
            or signed with another key): nothing is parsed then.
        """
        return cls._from_payload(unseal(_MAGIC, key, data, "torch head"), device=device)

    def adopt_local_state(self, old: Any) -> None:
        """Take over the novelty bank of ``old``, the model this one replaces (a scorer swapping
        in a published version: :meth:`Sampler.use_model <streamer.core.sampler.Sampler.use_model>`).

        The bank is moved, not copied: ``old`` is left without one. Nothing happens when ``old``
        is not a torch head or its bank is empty (this head keeps whatever bank it carried). A
        bank of another width, capacity or policy is not adopted -- this head starts with its
        own (a published one: empty) and a warning says why. When this head has not seen data
        yet the width is checked at its first rows (:meth:`_allocate`).
        """
        if old is self or not isinstance(old, TorchHead) or old._bank is None or old._bank_size == 0:
            return
        width = old._bank.shape[1]
        problem = None
        if self.config.memory == 0:
            problem = "this model keeps no novelty bank (memory=0)"
        elif (old.config.memory, old.config.memory_policy) != (self.config.memory, self.config.memory_policy):
            problem = (f"its capacity/policy {old.config.memory}/{old.config.memory_policy} differ from "
                       f"{self.config.memory}/{self.config.memory_policy}")
        elif self.n_features is not None and self.n_features != width:
            problem = f"its width {width} differs from the new model's {self.n_features} features"
        if problem is not None:
            log.warning("the novelty bank (%d rows) is not carried over to the new model: %s; "
                        "novelty starts empty", old._bank_size, problem)
            return
        self._bank = old._bank.to(device=self.device, dtype=self.dtype)
        self._bank_size, self._bank_next, self._bank_seen = old._bank_size, old._bank_next, old._bank_seen
        self._bank_rng.bit_generator.state = old._bank_rng.bit_generator.state
        old._bank, old._bank_size, old._bank_next, old._bank_seen = None, 0, 0, 0

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        # Pickled inside the service's signed checkpoints: store the safe format, not tensors.
        return (_from_pickled_payload, (self._payload(),))

    # -- device scores ------------------------------------------------------------------------

    def score_batch(self, X: np.ndarray, terms: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Probabilities and scores of a batch, from one pass on the device.

        Parameters
        ----------
        X
            ``(B, d)`` features.
        terms
            The scores wanted, named like the policy terms (``margin``, ``entropy``,
            ``least-confidence``, ``disagreement``, ``kl``, ``novelty``); names this head does
            not compute (``density``...) are ignored. ``None``: all of :attr:`score_terms`.

        Returns
        -------
        dict
            ``"proba"``: ``(B, C)`` float64, equal to :meth:`predict_proba`; one ``(B,)``
            float64 array in ``[0, 1]`` per term (higher = more worth a label). With fewer than
            two classes the uncertainty scores are 1 and the disagreements 0, as in numpy.
        """
        wanted = self.score_terms if terms is None else tuple(
            t for t in dict.fromkeys(terms) if t in self.score_terms)
        Xt = self._tensor(self._array(X))
        with torch.no_grad():
            members = self._members(Xt)
            P = members.mean(dim=0)
            scores = [self._score(name, P, members, Xt) for name in wanted]
            out = {"proba": _host_proba(P)}
            if scores:  # one transfer for every score
                out.update(zip(wanted, _host(torch.stack(scores)), strict=True))
        return out

    def remember(self, X: np.ndarray) -> None:
        """Add rows (the items just requested or labelled) to the novelty bank.

        A full bank drops its oldest row (``fifo``) or keeps a uniform sample of every row ever
        remembered (``reservoir``). Does nothing when ``memory=0``.
        """
        Xt = self._tensor(self._array(X))
        capacity = self.config.memory
        if capacity == 0 or Xt.shape[0] == 0:
            return
        if self._bank is None:
            self._bank = torch.zeros((capacity, Xt.shape[1]), dtype=self.dtype, device=self.device)
        with torch.no_grad():
            Q = _unit_rows(Xt)
            if self.config.memory_policy == "fifo":
                self._remember_fifo(Q)
            else:
                self._remember_reservoir(Q)

    def memory_rows(self) -> np.ndarray:
        """A copy of the bank's unit rows (``fifo``: oldest first; ``reservoir``: slot order)."""
        if self._bank is None:
            return np.zeros((0, self.n_features or 0))
        rows = _host(self._bank[: self._bank_size])
        if self.config.memory_policy == "fifo" and self._bank_size == self.config.memory:
            rows = np.roll(rows, -self._bank_next, axis=0)
        return rows

    def replay_rows(self) -> tuple[np.ndarray, list[Label]]:
        """A copy of the replay buffer, oldest first: its rows and their labels."""
        if self._replay_x is None or self._replay_y is None or self._replay_size == 0:
            return np.zeros((0, self.n_features or 0)), []
        order = np.arange(self._replay_size)
        if self._replay_size == self.config.replay:
            order = np.roll(order, -self._replay_next)
        rows = _host(self._replay_x[: self._replay_size])[order]
        labels = [self.classes[int(c)] for c in self._replay_y[: self._replay_size].cpu().numpy()[order]]
        return rows, labels

    # -- internals: shapes, forward pass, scores ------------------------------------------------

    def _array(self, X: np.ndarray) -> np.ndarray:
        arr = as_batch(X, self.n_features, self._np_dtype)
        d = arr.shape[1]
        if self.n_features is None:
            if d < 1:
                raise ValueError("X has no feature columns; the model needs at least one")
            self.n_features = d
            self._allocate(d)
        if not np.isfinite(arr).all():
            raise ValueError("X contains NaN or infinite values; impute or drop those rows")
        return arr

    def _tensor(self, arr: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(arr, dtype=self._np_dtype)).to(self.device)

    def _allocate(self, d: int) -> None:
        """Initial weights (one draw per member), optimizer state, scaler and replay buffer."""
        K, h = self.config.heads, self.config.hidden
        if self.config.kind == "linear":
            shapes = {"w": (K, d, 0), "b": (K, 0)}
        else:
            shapes = {"w1": (K, d, h), "b1": (K, h), "w2": (K, h, 0), "b2": (K, 0)}
        for name, shape in shapes.items():
            self._params[name] = self._init(shape) if len(shape) == 3 else self._zeros(shape)
            if self.config.optimizer == "adam":
                self._moments[f"m.{name}"] = self._zeros(shape)
                self._moments[f"v.{name}"] = self._zeros(shape)
        self._mean = self._zeros((d,))
        self._m2 = self._zeros((d,))
        R = self.config.replay
        self._replay_x = self._zeros((R, d))
        self._replay_y = torch.zeros(R, dtype=torch.int64, device=self.device)
        if self._bank is not None and self._bank.shape[1] != d:  # adopted before any data
            log.warning("the novelty bank (%d rows of width %d) does not fit rows of width %d; "
                        "novelty starts empty", self._bank_size, self._bank.shape[1], d)
            self._bank, self._bank_size, self._bank_next, self._bank_seen = None, 0, 0, 0

    def _init(self, shape: tuple[int, int, int]) -> torch.Tensor:
        """He-normal weights for ``(K, fan_in, fan_out)``, drawn on the host: the same on any device."""
        values = self._rng.normal(0.0, math.sqrt(2.0 / shape[1]), size=shape)
        return torch.from_numpy(values.astype(self._np_dtype)).to(self.device)

    def _zeros(self, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.zeros(shape, dtype=self.dtype, device=self.device)

    def _standardised(self, Xt: torch.Tensor) -> torch.Tensor:
        if self._count == 0:
            return Xt
        assert self._mean is not None and self._m2 is not None
        var = self._m2 / self._count
        std = torch.where(var > 0, var.sqrt(), torch.ones_like(var))
        return (Xt - self._mean) / std

    def _logits(self, Z: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """``(K, B, C)`` logits of every member for the standardised rows ``Z`` ``(B, d)``.

        Every member reads the same rows, so the first layer of all ``K`` members is one GEMM
        against their weights side by side (``(d, K * h)``); the MLP's second layer is one
        batched GEMM over the members.
        """
        if "w" in params:
            return _side_by_side(Z, params["w"], params["b"])
        hidden = torch.relu(_side_by_side(Z, params["w1"], params["b1"]))
        return torch.baddbmm(params["b2"][:, None, :], hidden, params["w2"])

    def _members(self, Xt: torch.Tensor) -> torch.Tensor:
        """``(K, B, C)`` member probabilities; ``(K, B, 0)`` before any class is known."""
        K, C = self.config.heads, len(self.classes)
        if C == 0:
            return torch.zeros((K, Xt.shape[0], 0), dtype=self.dtype, device=self.device)
        return torch.softmax(self._logits(self._standardised(Xt), self._params), dim=-1)

    def _score(self, name: str, P: torch.Tensor, members: torch.Tensor, Xt: torch.Tensor) -> torch.Tensor:
        if name == "novelty":
            return self._novelty(Xt)
        if name in ("disagreement", "kl"):
            return _js_disagreement(_hard_votes(members) if name == "disagreement" else members)
        return _uncertainty(name, P)

    def _novelty(self, Xt: torch.Tensor) -> torch.Tensor:
        B = Xt.shape[0]
        if self._bank is None or self._bank_size == 0:
            return torch.ones(B, dtype=self.dtype, device=self.device)
        Q = _unit_rows(Xt)
        bank = self._bank[: self._bank_size]
        block = _CUDA_BLOCK_BYTES if self.device.type == "cuda" else _CPU_BLOCK_BYTES
        step = max(1, block // (bank.element_size() * self._bank_size))
        best = torch.empty(B, dtype=self.dtype, device=self.device)
        for start in range(0, B, step):  # chunks of rows bound the similarity matrix's memory
            best[start : start + step] = (Q[start : start + step] @ bank.T).amax(dim=1)
        return ((1.0 - best) / 2.0).clamp(0.0, 1.0)

    # -- internals: learning ------------------------------------------------------------------

    def _step(self, row: torch.Tensor, c: int) -> None:
        """One gradient step of every member on ``row`` plus replayed rows, Poisson-weighted."""
        cfg = self.config
        X = row
        y = torch.tensor([c], dtype=torch.int64, device=self.device)
        n_replay = min(cfg.replay_batch, self._replay_size)
        if n_replay:
            assert self._replay_x is not None and self._replay_y is not None
            idx = torch.from_numpy(self._rng.integers(0, self._replay_size, n_replay)).to(self.device)
            X = torch.cat([row, self._replay_x[idx]])
            y = torch.cat([y, self._replay_y[idx]])
        K, n = cfg.heads, X.shape[0]
        if cfg.bootstrap:
            weights = torch.from_numpy(self._rng.poisson(1.0, (K, n)).astype(self._np_dtype)).to(self.device)
        else:
            weights = torch.ones((K, n), dtype=self.dtype, device=self.device)
        leaves = {name: p.detach().requires_grad_(True) for name, p in self._params.items()}
        with torch.enable_grad():
            logp = torch.log_softmax(self._logits(self._standardised(X), leaves), dim=-1)
            nll = -logp.gather(2, y.expand(K, n)[:, :, None])[:, :, 0]
            loss = (weights * nll).sum() / n  # members have separate weights: one sum for all
            grads = torch.autograd.grad(loss, list(leaves.values()))
        with torch.no_grad():
            self._apply(dict(zip(leaves, grads, strict=True)))

    def _apply(self, grads: dict[str, torch.Tensor]) -> None:
        cfg = self.config
        if cfg.optimizer == "adam":
            self._t += 1
            b1, b2 = _ADAM_BETAS
            c1, c2 = 1.0 - b1**self._t, 1.0 - b2**self._t
        for name, g in grads.items():
            p = self._params[name]
            if cfg.weight_decay:
                g = g + cfg.weight_decay * p
            if cfg.optimizer == "sgd":
                p.sub_(cfg.lr * g)
                continue
            m, v = self._moments[f"m.{name}"], self._moments[f"v.{name}"]
            m.mul_(b1).add_(g, alpha=1.0 - b1)
            v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
            p.sub_(cfg.lr * (m / c1) / ((v / c2).sqrt() + _ADAM_EPS))

    def _push_replay(self, row: torch.Tensor, c: int) -> None:
        R = self.config.replay
        if R == 0:
            return
        assert self._replay_x is not None and self._replay_y is not None
        self._replay_x[self._replay_next] = row[0]
        self._replay_y[self._replay_next] = c
        self._replay_next = (self._replay_next + 1) % R
        self._replay_size = min(self._replay_size + 1, R)

    def _add_class(self, label: Label) -> int:
        """The column of ``label``; a new class gets a new output column at its sorted place."""
        if label in self.classes:
            return self.classes.index(label)
        classes = with_class(self.classes, label)
        j = classes.index(label)
        K = self.config.heads
        for name in ("w", "b") if self.config.kind == "linear" else ("w2", "b2"):
            p = self._params[name]
            column = self._init((K, p.shape[1], 1)) if p.dim() == 3 else self._zeros((K, 1))
            self._params[name] = torch.cat([p[..., :j], column, p[..., j:]], dim=-1)
            for moment in ("m", "v"):
                key = f"{moment}.{name}"
                if key in self._moments:
                    old = self._moments[key]
                    self._moments[key] = torch.cat([old[..., :j], torch.zeros_like(column), old[..., j:]], dim=-1)
        if self._replay_y is not None:
            self._replay_y[self._replay_y >= j] += 1
        self.classes = classes
        return j

    # -- internals: the novelty bank ----------------------------------------------------------

    def _remember_fifo(self, Q: torch.Tensor) -> None:
        assert self._bank is not None
        capacity = self.config.memory
        if Q.shape[0] > capacity:  # only the newest `capacity` rows would survive anyway
            Q = Q[-capacity:]
        n = Q.shape[0]
        slots = (self._bank_next + torch.arange(n, device=self.device)) % capacity
        self._bank[slots] = Q
        self._bank_next = (self._bank_next + n) % capacity
        self._bank_size = min(self._bank_size + n, capacity)
        self._bank_seen += n

    def _remember_reservoir(self, Q: torch.Tensor) -> None:
        """Algorithm R, vectorised: row ``i`` (the ``t``-th ever) takes slot ``j ~ U[0, t)`` if
        ``j < capacity``; of two rows of one batch aimed at one slot the later wins."""
        assert self._bank is not None
        capacity, n = self.config.memory, Q.shape[0]
        seen = self._bank_seen + np.arange(1, n + 1)  # 1-based position of each row in the stream
        slots = np.where(seen <= capacity, seen - 1, self._bank_rng.integers(0, seen))
        keep = slots < capacity
        rows, slots = np.flatnonzero(keep), slots[keep]
        _, last = np.unique(slots[::-1], return_index=True)  # the last row aimed at each slot
        chosen = rows[::-1][last]
        index = torch.from_numpy(slots[::-1][last]).to(self.device)
        self._bank[index] = Q[torch.from_numpy(chosen).to(self.device)]
        self._bank_seen += n
        self._bank_size = min(self._bank_seen, capacity)

    # -- internals: state -----------------------------------------------------------------------

    def _payload(self, *, weights_only: bool = False) -> bytes:
        """JSON header + raw little-endian tensor bytes (unsigned); ``weights_only``: as an
        empty bank (readers of any version take it so)."""
        tensors: dict[str, torch.Tensor] = {f"p.{k}": v for k, v in self._params.items()}
        tensors.update({f"o.{k}": v for k, v in self._moments.items()})
        if self._mean is not None and self._m2 is not None:
            tensors["scaler.mean"], tensors["scaler.m2"] = self._mean, self._m2
        if self._replay_x is not None and self._replay_y is not None:
            tensors["replay.x"], tensors["replay.y"] = self._replay_x, self._replay_y
        if self._bank is not None and not weights_only:
            tensors["bank"] = self._bank[: self._bank_size]
        entries, blobs, offset = [], [], 0
        for name in sorted(tensors):
            arr = tensors[name].detach().cpu().numpy()
            arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
            raw = arr.tobytes()
            entries.append({"name": name, "dtype": arr.dtype.str, "shape": list(arr.shape),
                            "offset": offset, "nbytes": len(raw)})
            blobs.append(raw)
            offset += len(raw)
        meta = {
            "config": asdict(self.config), "spec": self.spec, "classes": self.classes,
            "version": self.version, "n_features": self.n_features, "t": self._t,
            "count": self._count, "replay_size": self._replay_size, "replay_next": self._replay_next,
            "bank_size": self._bank_size, "bank_next": self._bank_next, "bank_seen": self._bank_seen,
            "rng": self._rng.bit_generator.state, "bank_rng": self._bank_rng.bit_generator.state,
        }
        if weights_only:
            meta.update(bank_size=0, bank_next=0, bank_seen=0,
                        bank_rng=np.random.default_rng([self.config.seed, 1]).bit_generator.state)
        header = json.dumps({"format": 1, "meta": meta, "tensors": entries}, sort_keys=True,
                            separators=(",", ":"), allow_nan=False).encode()
        return struct.pack("<Q", len(header)) + header + b"".join(blobs)

    @classmethod
    def _from_payload(cls, payload: bytes, *, device: str | None = None) -> TorchHead:
        try:
            (size,) = struct.unpack_from("<Q", payload)
            header = json.loads(payload[8 : 8 + size])
            meta, entries = header["meta"], header["tensors"]
            if header.get("format") != 1:
                raise ValueError(f"format {header.get('format')!r}")
            blob = memoryview(payload)[8 + size :]
            arrays = {entry["name"]: _read_array(entry, blob) for entry in entries}
            config = dict(meta["config"])
        except (struct.error, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"torch head checkpoint is malformed ({exc}); was it written by this version?") from None
        kind = config.pop("kind")
        if device is not None:
            config["device"] = device
        model = cls(kind, spec=meta["spec"], **config)
        model.classes = list(meta["classes"])
        model.version = int(meta["version"])
        model.n_features = meta["n_features"]
        model._t, model._count = int(meta["t"]), int(meta["count"])
        model._replay_size, model._replay_next = int(meta["replay_size"]), int(meta["replay_next"])
        model._bank_size, model._bank_next = int(meta["bank_size"]), int(meta["bank_next"])
        model._bank_seen = int(meta["bank_seen"])
        model._rng.bit_generator.state = meta["rng"]
        model._bank_rng.bit_generator.state = meta["bank_rng"]

        def tensor(arr: np.ndarray) -> torch.Tensor:
            t = torch.from_numpy(arr).to(model.device)
            return t if arr.dtype == np.int64 else t.to(model.dtype)

        for name, arr in arrays.items():
            group, _, key = name.partition(".")
            if group == "p":
                model._params[key] = tensor(arr)
            elif group == "o":
                model._moments[key] = tensor(arr)
        if "scaler.mean" in arrays:
            model._mean, model._m2 = tensor(arrays["scaler.mean"]), tensor(arrays["scaler.m2"])
        if "replay.x" in arrays:
            model._replay_x, model._replay_y = tensor(arrays["replay.x"]), tensor(arrays["replay.y"])
        if "bank" in arrays:
            bank = arrays["bank"]
            model._bank = model._zeros((model.config.memory, bank.shape[1]))
            model._bank[: bank.shape[0]] = tensor(bank)
        return model


# -- scores on the device (the definitions of streamer.core.scores / streamer.gates.committee) --


def _uncertainty(name: str, P: torch.Tensor) -> torch.Tensor:
    B, C = P.shape
    if C < 2:
        return torch.ones(B, dtype=P.dtype, device=P.device)
    if name == "least-confidence":
        score = (1.0 - P.amax(dim=1)) / (1.0 - 1.0 / C)
    elif name == "margin":
        top2 = P.topk(2, dim=1).values
        score = 1.0 - (top2[:, 0] - top2[:, 1])
    else:  # entropy
        score = -torch.special.xlogy(P, P).sum(dim=1) / math.log(C)
    return score.clamp(0.0, 1.0) + 0.0  # + 0.0 turns -0.0 into 0.0


def _side_by_side(Z: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``Z @ W[k] + b[k]`` for every ``k`` as one GEMM: ``(B, d)``, ``(K, d, n)``, ``(K, n)`` -> ``(K, B, n)``."""
    K, d, n = W.shape
    out = torch.addmm(b.reshape(K * n), Z, W.permute(1, 0, 2).reshape(d, K * n))
    return out.view(Z.shape[0], K, n).transpose(0, 1)


def _hard_votes(members: torch.Tensor) -> torch.Tensor:
    """Each member's vote as a distribution; a tie splits the vote evenly."""
    hard = (members == members.amax(dim=-1, keepdim=True)).to(members.dtype)
    return hard / hard.sum(dim=-1, keepdim=True)


def _js_disagreement(M: torch.Tensor) -> torch.Tensor:
    """``(H(mean_k M_k) - mean_k H(M_k)) / log min(K, C)`` for ``(K, B, C)`` distributions."""
    K, B, C = M.shape
    if K < 2 or C < 2:
        return torch.zeros(B, dtype=M.dtype, device=M.device)
    js = (-torch.special.xlogy(M.mean(dim=0), M.mean(dim=0)).sum(dim=-1)
          + torch.special.xlogy(M, M).sum(dim=-1).mean(dim=0))
    return (js / math.log(min(K, C))).clamp(0.0, 1.0) + 0.0


def _unit_rows(X: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit length; a zero row stays zero (orthogonal to everything)."""
    norms = torch.linalg.vector_norm(X, dim=1, keepdim=True)
    return torch.where(norms > 0, X / torch.where(norms > 0, norms, torch.ones_like(norms)), 0.0)


# -- helpers ---------------------------------------------------------------------------------


def _host(t: torch.Tensor) -> np.ndarray:
    """A float64 numpy copy (a CPU tensor's ``numpy()`` would share its memory)."""
    return t.detach().cpu().numpy().astype(np.float64, copy=True)


def _host_proba(t: torch.Tensor) -> np.ndarray:
    """Probabilities as float64 rows that sum to 1 (a float32 softmax is off by up to ~1e-7)."""
    out = _host(t)
    if t.dtype != torch.float64 and out.shape[-1]:
        out /= out.sum(axis=-1, keepdims=True)
    return out


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ValueError(f"unknown device {name!r}; use 'auto', 'cpu' or 'cuda[:N]'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but torch sees no CUDA GPU here; use device='auto' or 'cpu'")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device {name!r} is not supported; use 'auto', 'cpu' or 'cuda[:N]'")
    return device


def _resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.float64 if device.type == "cpu" else torch.float32
    return torch.float64 if name == "float64" else torch.float32


def _read_array(entry: dict[str, Any], blob: memoryview) -> np.ndarray:
    dtype = _FILE_DTYPES.get(entry["dtype"])
    if dtype is None:
        raise ValueError(f"tensor {entry['name']!r} has unsupported dtype {entry['dtype']!r}")
    shape = [int(s) for s in entry["shape"]]
    count = math.prod(shape)
    offset, nbytes = int(entry["offset"]), int(entry["nbytes"])
    if min(shape, default=0) < 0 or nbytes != count * np.dtype(dtype).itemsize or offset < 0 \
            or offset + nbytes > len(blob):
        raise ValueError(f"tensor {entry['name']!r} does not fit the data")
    return np.frombuffer(blob, dtype=np.dtype(dtype).newbyteorder("<"), count=count,
                         offset=offset).astype(dtype).reshape(shape)


def _from_pickled_payload(payload: bytes) -> TorchHead:
    """Unpickle helper: the payload travelled inside a pickle its owner signed and verified."""
    return TorchHead._from_payload(payload)


def _plain(label: Any) -> Label:
    value = label.item() if isinstance(label, np.generic) else label
    if isinstance(value, bool | int | str) or (isinstance(value, float) and math.isfinite(value)):
        return value
    raise ValueError(
        f"labels must be int or str (also bool or a finite float), got {value!r} of type "
        f"{type(value).__name__}"
    )


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")


