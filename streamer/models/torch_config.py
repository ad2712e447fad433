"""The options of a :class:`~streamer.models.torch_head.TorchHead` and its ``torch:...`` spec.

Needs no PyTorch: ``build_model`` checks a spec before it asks for the torch extra. The spec
grammar and every option are described in :mod:`streamer.models.torch_head`.
"""

from __future__ import annotations

import ast
import difflib
import math
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["INSTALL_HINT", "KINDS", "MEMORY_POLICIES", "OPTIMIZERS", "OPTION_NAMES", "SCORE_TERMS",
           "HeadConfig", "parse_spec"]

INSTALL_HINT = "pip install 'streamer[torch]'"
SCORE_TERMS = ("margin", "entropy", "least-confidence", "disagreement", "kl", "novelty")
KINDS = ("linear", "mlp")
OPTIMIZERS = ("adam", "sgd")
MEMORY_POLICIES = ("fifo", "reservoir")


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


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
