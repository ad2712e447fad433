"""Models behind the :class:`~streamer.core.model.Model` protocol, built from spec strings.

A spec names river estimators joined by ``|`` into a pipeline, each optionally with simple
keyword arguments::

    "StandardScaler | LogisticRegression(l2=0.001)"
    "preprocessing.StandardScaler | linear_model.SoftmaxRegression"
    "river.naive_bayes.GaussianNB"
    "HoeffdingTreeClassifier(grace_period=50)"
    "StandardScaler | BaggingClassifier(model=LogisticRegression(l2=0.001), n_models=5)"

A spec that starts with ``torch:`` builds a :class:`~streamer.models.torch_head.TorchHead`
(needs the torch extra, ``pip install 'streamer[torch]'``): an ensemble of linear or small MLP
heads scored in one batched pass on the GPU when there is one. Grammar::

    spec    := "torch:" kind [ "(" [ option { "," option } ] ")" ]
    kind    := "linear" | "mlp"
    option  := name "=" literal

    "torch:linear"
    "torch:mlp(hidden=128, heads=8, lr=0.01, replay=256, memory=10000, device='auto')"

The options (``hidden``, ``heads``, ``lr``, ``optimizer``, ``steps``, ``replay``,
``replay_batch``, ``bootstrap``, ``weight_decay``, ``memory``, ``memory_policy``, ``device``,
``dtype``, ``seed``) are described in :mod:`streamer.models.torch_head`.

Bare names are looked up in river's submodules (:data:`SEARCHED_MODULES`). A keyword value is
either a literal, parsed with :func:`ast.literal_eval`, or a nested river estimator written the
same way (a name, or a name with keyword arguments) -- nothing is evaluated. Estimators that
take a ``seed`` get the ``seed`` passed to :func:`build_model` unless the spec sets one; nested
ones too.

``DEFAULT_MODEL`` is ``auto``: the portfolio of :mod:`streamer.models.portfolio`, whose members
(:data:`AUTO_MEMBERS`, and first the torch MLP head when torch is installed) all learn every
label while the one with the best unbiased accuracy estimate predicts. It was chosen in
``benchmarks/label_efficiency.py`` over each of its members alone, the Hedge vote and the member
orders (results and what lost: docs/results.md, 'Label efficiency').

``LOGISTIC_MODEL`` is ``StandardScaler | LogisticRegression`` (one-vs-rest, added
automatically), the default before ``auto`` and the portfolio's first river member. With margin
sampling at budget 0.05, mean prequential accuracy over the five development streams (3 seeds
each) was 0.769, against StandardScaler | KNNClassifier 0.748, StandardScaler |
SoftmaxRegression 0.737, StandardScaler | GaussianNB 0.692 and HoeffdingTreeClassifier 0.651;
its probabilities are graded rather than near one-hot (GaussianNB gives a zero margin on most
digits), which is what uncertainty sampling needs. Evidence:
``benchmarks/results/simulate_vs_random.json``.

``COMMITTEE_MODEL`` is the committee version of ``LOGISTIC_MODEL``: five logistic regressions
(each one-vs-rest) under online bagging, whose members
:meth:`~streamer.models.river.RiverModel.committee_proba` returns for committee disagreement
gates. On ``segment`` (prequential, every label, seeds 0-2) it scored 0.786-0.797 against
0.796 for ``LOGISTIC_MODEL``; the members' hard votes split on 18-20% of the items (12-14% over
the last 1000), mean normalised mean-KL 0.004. The Poisson weights of online bagging are the
only source of diversity, so the members agree far more than the trees of
``ARFClassifier(n_models=5)`` (votes split on 73-83%, accuracy 0.79-0.83). It learns about four
times slower than ``LOGISTIC_MODEL`` (3.9k against 16k items/s in batches of 100).

Examples
--------
>>> import numpy as np
>>> model = build_model("StandardScaler | LogisticRegression(l2=0.001)")
>>> model.spec
'StandardScaler | LogisticRegression(l2=0.001)'
>>> build_model(COMMITTEE_MODEL).committee_proba(np.zeros((2, 4))).shape  # 5 members, no class yet
(5, 2, 0)
>>> try:  # a torch head when PyTorch is installed, else a ValueError that says how to add it
...     head = build_model("torch:linear(heads=4)")
... except ValueError as exc:
...     assert "pip install 'streamer[torch]'" in str(exc)
... else:
...     assert head.committee_proba(np.zeros((2, 3))).shape == (4, 2, 0)
"""

from __future__ import annotations

import ast
import difflib
import importlib
import importlib.util
import inspect
from functools import cache
from typing import Any

from river import base

from streamer.core.model import Model
from streamer.models.river import RiverModel

__all__ = [
    "AUTO_MEMBERS", "COMMITTEE_MODEL", "DEFAULT_MODEL", "LOGISTIC_MODEL", "SEARCHED_MODULES",
    "RiverModel", "auto_members", "build_model", "check_model_spec",
]

LOGISTIC_MODEL = "StandardScaler | LogisticRegression"
DEFAULT_MODEL = "auto"

COMMITTEE_MODEL = "StandardScaler | BaggingClassifier(model=LogisticRegression, n_models=5)"

# ``auto``: the portfolio's candidate members, in order of preference (the first leads until
# the race shows another better). Torch members join only where torch is installed, and then
# come first: the MLP head led on most streams at 5% and 10% (label_efficiency results).
AUTO_MEMBERS = {
    "logistic": LOGISTIC_MODEL,
    "softmax": "StandardScaler | SoftmaxRegression",
    "gaussian_nb": "GaussianNB",
    "hoeffding_tree": "HoeffdingAdaptiveTreeClassifier",
}
# float32: twice float64's scoring rate on a CPU, where the head would otherwise default to
# float64; no novelty bank: the portfolio's members only predict and learn.
AUTO_TORCH_MEMBERS = {"torch_mlp": "torch:mlp(dtype='float32', memory=0)"}

SEARCHED_MODULES = (
    "preprocessing",
    "linear_model",
    "naive_bayes",
    "tree",
    "ensemble",
    "forest",
    "neighbors",
    "multiclass",
    "neural_net",
    "feature_extraction",
    "feature_selection",
    "imblearn",
    "compose",
    "rules",
    "dummy",
)


def build_model(spec: str, *, seed: int = 0) -> Model:
    """Build a model from a spec string.

    Parameters
    ----------
    spec
        River estimators joined by ``|``, or ``torch:...`` (see the module docstring).
    seed
        Passed to every estimator that accepts a ``seed`` and was not given one.

    Returns
    -------
    Model
        A :class:`RiverModel`, or a :class:`~streamer.models.torch_head.TorchHead` for a
        ``torch:`` spec.

    Raises
    ------
    ValueError
        Unknown names (with close matches), malformed arguments, or a ``torch:`` spec without
        PyTorch installed.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("model spec must be a non-empty string, e.g. 'StandardScaler | GaussianNB'")
    spec = spec.strip()
    if spec.startswith("torch:"):
        return _build_torch(spec, seed)
    if _is_auto(spec):
        return _build_auto(spec, seed)
    steps = [_build_step(part.strip(), seed) for part in spec.split("|")]
    estimator = steps[0]
    for step in steps[1:]:
        estimator = estimator | step
    return RiverModel(estimator, spec=spec)


def check_model_spec(spec: str) -> None:
    """Raise the ``ValueError`` :func:`build_model` would, without building a torch head.

    Settings call it so that a bad ``--model`` is reported with the other bad settings, before
    anything starts.

    >>> check_model_spec("StandardScaler | NoSuchModel")
    Traceback (most recent call last):
    ...
    ValueError: unknown river estimator 'NoSuchModel'
    """
    if isinstance(spec, str) and spec.strip().startswith("torch:"):
        from streamer.models.torch_head import parse_spec

        parse_spec(spec.strip(), seed=0)
        if importlib.util.find_spec("torch") is None:
            raise ValueError(_torch_missing(spec.strip()))
        return
    if isinstance(spec, str) and _is_auto(spec.strip()):
        members, _ = _auto_plan(spec.strip())
        for member in members.values():
            check_model_spec(member)
        return
    build_model(spec)


def _is_auto(spec: str) -> bool:
    return spec == "auto" or spec.startswith("auto(")


def _build_auto(spec: str, seed: int) -> Model:
    from streamer.models.portfolio import Portfolio

    members, options = _auto_plan(spec)
    return Portfolio({name: build_model(member, seed=seed) for name, member in members.items()},
                     spec=spec, **options)


def _auto_plan(spec: str) -> tuple[dict[str, str], dict[str, Any]]:
    """The members (name -> spec) and the portfolio options of ``auto`` or
    ``auto(vote='hedge', members=('logistic', 'softmax'), switch_sigmas=2.0)``."""
    from streamer.models.portfolio import check_vote

    options: dict[str, Any] = {}
    if spec != "auto":
        try:
            call = ast.parse(spec, mode="eval").body
            assert isinstance(call, ast.Call) and not call.args
            options = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
        except (SyntaxError, ValueError, AssertionError):
            raise ValueError(f"cannot parse {spec!r}: write auto or auto(vote='hedge', "
                             "members=('logistic', 'softmax'))") from None
    unknown = set(options) - {"vote", "members", "switch_sigmas", "eta"}
    if unknown:
        raise ValueError(f"{spec!r}: unknown option(s) {', '.join(sorted(map(str, unknown)))}; "
                         "auto takes vote, members, switch_sigmas, eta")
    candidates = auto_members()
    names = options.pop("members", None)
    names = list(candidates) if names is None else [names] if isinstance(names, str) else list(names)
    missing = [name for name in names if name not in candidates]
    if missing or not names:
        raise ValueError(f"{spec!r}: no member(s) {missing or names}; choose from "
                         f"{', '.join(candidates)}")
    check_vote(options.get("vote", "leader"))
    return {name: candidates[name] for name in names}, options


def auto_members() -> dict[str, str]:
    """The members ``auto`` builds here, name -> spec, in order: the torch head first where
    torch is installed, then :data:`AUTO_MEMBERS`."""
    if importlib.util.find_spec("torch") is not None:
        return {**AUTO_TORCH_MEMBERS, **AUTO_MEMBERS}
    return dict(AUTO_MEMBERS)


def _torch_missing(spec: str) -> str:
    return f"torch models ({spec!r}) need PyTorch, which is not installed: pip install 'streamer[torch]'"


def _build_torch(spec: str, seed: int) -> Model:
    from streamer.models.torch_head import TorchHead, parse_spec

    parse_spec(spec, seed=seed)  # a malformed spec is reported even without PyTorch
    try:
        return TorchHead.from_spec(spec, seed=seed)
    except ImportError:
        raise ValueError(_torch_missing(spec)) from None


def _build_step(text: str, seed: int) -> Any:
    if not text:
        raise ValueError("empty step in model spec: check for a doubled or trailing '|'")
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError as exc:
        raise ValueError(f"cannot parse model step {text!r}: {exc.msg}") from None
    return _build(node, text, seed)


def _build(node: ast.expr, text: str, seed: int, cls: type | None = None) -> Any:
    """Build the estimator ``Name`` or ``Name(key=value, ...)`` that ``node`` spells."""
    call = node if isinstance(node, ast.Call) else None
    if cls is None:
        cls = _resolve(_dotted(call.func if call else node, text))
    call_args: dict[str, Any] = {}
    if call is not None:
        if call.args:
            raise ValueError(f"model step {text!r}: pass arguments by keyword, e.g. Name(l2=0.001)")
        for kw in call.keywords:
            if kw.arg is None:
                raise ValueError(f"model step {text!r}: **kwargs are not supported")
            call_args[kw.arg] = _argument(kw.value, kw.arg, text, seed)
    params = inspect.signature(cls).parameters
    if "seed" in params and "seed" not in call_args:
        call_args["seed"] = seed
    try:
        return cls(**call_args)
    except TypeError as exc:
        raise ValueError(f"cannot build {ast.get_source_segment(text, node) or text!r}: {exc}") from None


def _argument(node: ast.expr, name: str, text: str, seed: int) -> Any:
    """A keyword value: a literal, or a nested estimator such as ``model=LogisticRegression``."""
    expected = (
        f"model step {text!r}: the value of {name!r} must be a literal (number, string, bool, "
        "None, tuple, list, dict) or a river estimator such as LogisticRegression(l2=0.001)"
    )
    if isinstance(node, ast.Name | ast.Attribute | ast.Call):
        try:
            cls = _resolve(_dotted(node.func if isinstance(node, ast.Call) else node, text))
        except ValueError as exc:
            raise ValueError(f"{expected}; {exc}") from None
        if not issubclass(cls, base.Estimator):
            raise ValueError(f"{expected}; {cls.__module__}.{cls.__name__} is not an estimator")
        return _build(node, text, seed, cls)
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise ValueError(expected) from None


def _dotted(node: ast.expr, text: str) -> str:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        raise ValueError(f"model step {text!r} is not a name like 'GaussianNB' or 'tree.HoeffdingTreeClassifier'")
    parts.append(node.id)
    return ".".join(reversed(parts))


def _resolve(name: str) -> type:
    if "." in name:
        module_name, _, attr = name.rpartition(".")
        inside_river = module_name == "river" or module_name.startswith("river.")
        candidates = [module_name] if inside_river else [f"river.{module_name}"]
        for candidate in candidates:
            try:
                module = importlib.import_module(candidate)
            except ImportError:
                continue
            if isinstance(getattr(module, attr, None), type):
                return getattr(module, attr)
    else:
        found = _catalogue().get(name)
        if found is not None:
            return found
    close = difflib.get_close_matches(name.rpartition(".")[2], list(_catalogue()), n=5, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown river estimator {name!r}{hint}")


@cache
def _catalogue() -> dict[str, type]:
    """Bare class name -> class over :data:`SEARCHED_MODULES` (first module wins)."""
    found: dict[str, type] = {}
    for module_name in SEARCHED_MODULES:
        try:
            module = importlib.import_module(f"river.{module_name}")
        except ImportError:
            continue
        for attr in getattr(module, "__all__", dir(module)):
            obj = getattr(module, attr, None)
            if isinstance(obj, type) and not attr.startswith("_"):
                found.setdefault(attr, obj)
    return found
