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
- **State** (:meth:`TorchHead.to_bytes`, format in :mod:`streamer.models.torch_state`) is a
  JSON header (config, classes, version, counters, random generator states) and the tensors
  as raw little-endian bytes, signed with HMAC-SHA256 under the caller's key and verified
  before anything is parsed. No pickle: the bytes never run code when read. Pickling a
  ``TorchHead`` (the service's signed checkpoints pickle the whole sampler) stores the same
  bytes, so it moves between CPU and CUDA machines.
- **Scale-out.** The novelty bank is this process's own state (the rows *its* sampler asked
  for, :mod:`streamer.models.torch_bank`). A learner publishes
  ``to_bytes(key, weights_only=True)``: what it learned, without the bank, so the
  publication's size does not grow with the rows decided. A scorer that swaps a published
  version in (:meth:`Sampler.use_model <streamer.core.sampler.Sampler.use_model>`) keeps its
  own bank (:meth:`TorchHead.adopt_local_state`).

Modules: :mod:`~streamer.models.torch_config` (options, spec), :mod:`~streamer.models.torch_net`
(weights and training), :mod:`~streamer.models.torch_bank` (novelty bank),
:mod:`~streamer.models.torch_ops` (device kernels), :mod:`~streamer.models.torch_state`
(state format); this module puts them together.

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

import logging
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

import numpy as np

try:
    import torch
except ImportError:  # the torch extra is not installed: TorchHead() says how to add it
    torch = None  # type: ignore[assignment]

from streamer.models.torch_bank import NoveltyBank
from streamer.models.torch_config import (
    INSTALL_HINT,
    KINDS,
    MEMORY_POLICIES,
    OPTIMIZERS,
    OPTION_NAMES,
    SCORE_TERMS,
    HeadConfig,
    parse_spec,
)
from streamer.models.torch_net import HeadNetwork
from streamer.models.torch_ops import hard_votes, host, host_proba, js_disagreement, uncertainty
from streamer.models.torch_state import MAGIC as _MAGIC
from streamer.models.torch_state import read_payload, write_payload
from streamer.signed import seal, unseal

__all__ = [
    "INSTALL_HINT",
    "KINDS",
    "MEMORY_POLICIES",
    "OPTIMIZERS",
    "OPTION_NAMES",
    "SCORE_TERMS",
    "HeadConfig",
    "TorchHead",
    "parse_spec",
]

log = logging.getLogger(__name__)


class TorchHead(HeadNetwork):
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
        super().__init__(HeadConfig(kind=kind, **options))
        self.spec = spec or self.config.spec()
        self._bank = NoveltyBank(self.config.memory, self.config.memory_policy, self.config.seed,
                                 self.device, self.dtype)

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
        return self._bank.size

    # -- the Model protocol (observe and learn: HeadNetwork) ------------------------------------

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Return ``(B, len(classes))`` probabilities (the members' mean); ``(B, 0)`` before any
        label was seen."""
        Xt = self._tensor(self._array(X))
        with torch.no_grad():
            return host_proba(self._members(Xt).mean(dim=0))

    def committee_proba(self, X: np.ndarray) -> np.ndarray:
        """Return the ``(K, B, len(classes))`` probabilities of the ``K`` members.

        Nothing learns: the model and its random state do not change.
        """
        Xt = self._tensor(self._array(X))
        with torch.no_grad():
            return host_proba(self._members(Xt))

    def to_bytes(self, key: bytes, *, weights_only: bool = False) -> bytes:
        """Serialize the state (no pickle), signed with HMAC-SHA256 under ``key``.

        ``weights_only=True`` is the form a learner publishes to scoring replicas: what it
        learned (weights, optimizer state, scaler, replay buffer, classes) without the novelty
        bank, which holds the rows *this* process asked for -- a scorer keeps its own across a
        swap (:meth:`adopt_local_state`). Its size does not grow with the rows decided. The
        default, the full state, is what a checkpoint of this process keeps.
        """
        return seal(_MAGIC, key, write_payload(self, weights_only=weights_only))

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
        return read_payload(cls, unseal(_MAGIC, key, data, "torch head"), device=device)

    def adopt_local_state(self, old: Any) -> None:
        """Take over the novelty bank of ``old``, the model this one replaces (a scorer swapping
        in a published version: :meth:`Sampler.use_model <streamer.core.sampler.Sampler.use_model>`).

        The bank is moved, not copied: ``old`` is left without one. Nothing happens when ``old``
        is not a torch head or its bank is empty (this head keeps whatever bank it carried). A
        bank of another width, capacity or policy is not adopted -- this head keeps its own (a
        published one: empty) and a warning says why. When this head has not seen data yet
        the width is checked at its first rows.
        """
        if old is self or not isinstance(old, TorchHead) or old._bank.size == 0:
            return
        problem = self._bank.refusal(old._bank, self.n_features)
        if problem is not None:
            log.warning("the novelty bank (%d rows) is not carried over to the new model: %s; "
                        "novelty starts empty", old._bank.size, problem)
            return
        self._bank.take(old._bank)

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        # Pickled inside the service's signed checkpoints: store the safe format (bank included:
        # the checkpoint is this process's own state), not tensors.
        return (_from_pickled_payload, (write_payload(self),))

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
            out = {"proba": host_proba(P)}
            if scores:  # one transfer for every score
                out.update(zip(wanted, host(torch.stack(scores)), strict=True))
        return out

    def remember(self, X: np.ndarray) -> None:
        """Add rows (the items just requested or labelled) to the novelty bank.

        A full bank drops its oldest row (``fifo``) or keeps a uniform sample of every row ever
        remembered (``reservoir``). Does nothing when ``memory=0``.
        """
        self._bank.add(self._tensor(self._array(X)))

    def memory_rows(self) -> np.ndarray:
        """A copy of the bank's unit rows (``fifo``: oldest first; ``reservoir``: slot order)."""
        return self._bank.host_rows(self.n_features or 0)

    # -- internals ------------------------------------------------------------------------------

    def _allocate(self, d: int) -> None:
        super()._allocate(d)
        self._bank.fit_width(d)  # a bank adopted before this head saw data

    def _score(self, name: str, P: torch.Tensor, members: torch.Tensor, Xt: torch.Tensor) -> torch.Tensor:
        if name == "novelty":
            return self._bank.novelty(Xt)
        if name in ("disagreement", "kl"):
            return js_disagreement(hard_votes(members) if name == "disagreement" else members)
        return uncertainty(name, P)


def _from_pickled_payload(payload: bytes) -> TorchHead:
    """Unpickle helper (its name is in every pickled head: keep it here): the payload travelled
    inside a pickle its owner signed and verified."""
    return read_payload(TorchHead, payload)
