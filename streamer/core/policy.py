"""Query policies: which signals make an item worth a label, as a small composable expression.

A policy combines per-item *signals* into one score in ``[0, 1]``; the budget controller then
asks for the items whose score clears its threshold, so whatever the expression, the label
share holds. Signals:

=====================  ===========================================================  ============
term                   per-item signal in ``[0, 1]``                               reason
=====================  ===========================================================  ============
``margin``             1 - (p1 - p2), the two most probable classes                ``uncertainty``
``entropy``            normalised entropy of the class probabilities               ``uncertainty``
``least-confidence``   (1 - p_max) scaled to [0, 1]                                ``uncertainty``
``disagreement``       vote entropy of a committee (``model.committee_proba``)     ``disagreement``
``kl``                 mean KL of the members to the consensus (committee)         ``disagreement``
``novelty``            distance to the nearest labelled/requested item (memory)    ``novelty``
``egl``                rank of the expected gradient length (model change)         ``model_change``
``density``            mean similarity to recent items (a weight; see ``*``)       --
=====================  ===========================================================  ============

Operators, loosest first: ``or`` (the larger), ``and`` (the smaller), ``*`` (the product), and
parentheses. The operands of ``or`` and ``and`` live on different scales (a margin of 0.9 is
common, a novelty of 0.9 is rare), so each is first turned into its *running rank*: the share
of its last ``rank_window`` values it exceeds. ``margin or novelty`` then asks for items in the
top share of either signal, and the reason recorded is the operand that ranked higher.
``margin * density`` keeps raw values: a typical uncertain item beats an uncertain outlier.

The random exploration share, the cold start and the budget itself are not part of the
expression: they are the controller's job, the same for every policy.

Examples
--------
>>> parse("margin or (novelty and entropy)")
Or(Term('margin'), And(Term('novelty'), Term('entropy')))
>>> parse("margin * density").terms()
['density', 'margin']
>>> parse("margin or")
Traceback (most recent call last):
...
ValueError: policy 'margin or': expected a term or '(' at the end
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from streamer.core.decisions import DISAGREEMENT, MODEL_CHANGE, NOVELTY, UNCERTAINTY
from streamer.core.scores import SCORES

__all__ = [
    "COMMITTEE_TERMS",
    "MEMORY_TERMS",
    "TERMS",
    "And",
    "Node",
    "Or",
    "Product",
    "RunningRank",
    "Term",
    "parse",
]

# term -> the reason recorded when the term decided an ask (None: a weight, never a reason)
TERMS: dict[str, str | None] = {
    "margin": UNCERTAINTY,
    "entropy": UNCERTAINTY,
    "least-confidence": UNCERTAINTY,
    "disagreement": DISAGREEMENT,
    "kl": DISAGREEMENT,
    "novelty": NOVELTY,
    "egl": MODEL_CHANGE,
    "density": None,
}
COMMITTEE_TERMS = frozenset({"disagreement", "kl"})
MEMORY_TERMS = frozenset({"novelty", "density"})
_ALIASES = {"least_confidence": "least-confidence", "vote-entropy": "disagreement"}
_TOKEN = re.compile(r"\s*(?:(\(|\)|\*)|([A-Za-z][A-Za-z_-]*))")


class RunningRank:
    """Map raw values to their rank among the last ``window`` values seen, in ``[0, 1]``.

    The rank of ``x`` is the share of stored values below it plus half the share equal to it,
    so a constant signal ranks 0.5 and ranks are comparable across signals of any scale.
    The batch is ranked against the values before it, then stored.

    Examples
    --------
    >>> rank = RunningRank(window=4)
    >>> rank(np.array([1.0, 2.0, 3.0, 4.0])).tolist()  # nothing stored yet: ranked in-batch
    [0.125, 0.375, 0.625, 0.875]
    >>> rank(np.array([2.5, 10.0])).tolist()
    [0.5, 1.0]
    """

    def __init__(self, window: int = 1000) -> None:
        if not (isinstance(window, int) and window >= 1):
            raise ValueError(f"rank window must be a positive number of values, got {window!r}")
        self._ring = np.empty(window, dtype=np.float64)
        self._size = 0
        self._next = 0

    def __call__(self, values: np.ndarray) -> np.ndarray:
        values = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=1.0)
        stored = self._ring[: self._size] if self._size else values
        ref = np.sort(stored)
        below = np.searchsorted(ref, values, side="left")
        upto = np.searchsorted(ref, values, side="right")
        ranks = (below + upto) / (2.0 * ref.shape[0])
        self._store(values)
        return ranks

    def _store(self, values: np.ndarray) -> None:
        cap = self._ring.shape[0]
        if values.shape[0] >= cap:
            self._ring[:] = values[-cap:]
            self._size, self._next = cap, 0
            return
        end = self._next + values.shape[0]
        if end <= cap:
            self._ring[self._next : end] = values
        else:
            first = cap - self._next
            self._ring[self._next :] = values[:first]
            self._ring[: end - cap] = values[first:]
        self._next = end % cap
        self._size = min(cap, self._size + values.shape[0])


# -- the expression tree -------------------------------------------------------------------
#
# evaluate(signals) -> (score (B,), reason index (B,)): the reason index points into REASON_NAMES
# of the tree's terms, -1 for none.


class Node:
    """A node of a parsed policy."""

    def terms(self) -> list[str]:
        """The sorted distinct terms the policy needs."""
        raise NotImplementedError

    def evaluate(self, signals: dict[str, np.ndarray]) -> tuple[np.ndarray, list[str | None]]:
        """Score and reason of every item from the raw signals of a batch."""
        raise NotImplementedError


@dataclass(eq=False)
class Term(Node):
    name: str

    def __repr__(self) -> str:
        return f"Term({self.name!r})"

    def terms(self) -> list[str]:
        return [self.name]

    def evaluate(self, signals: dict[str, np.ndarray]) -> tuple[np.ndarray, list[str | None]]:
        values = signals[self.name]
        return values, [TERMS[self.name]] * values.shape[0]


class _Ranked(Node):
    """``or`` / ``and``: combine the running ranks of the operands."""

    symbol = ""

    def __init__(self, *operands: Node, rank_window: int = 1000) -> None:
        self.operands = operands
        self._ranks = [RunningRank(rank_window) for _ in operands]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(map(repr, self.operands))})"

    def terms(self) -> list[str]:
        return sorted({t for op in self.operands for t in op.terms()})

    def evaluate(self, signals: dict[str, np.ndarray]) -> tuple[np.ndarray, list[str | None]]:
        ranked, reasons = [], []
        for op, rank in zip(self.operands, self._ranks, strict=True):
            values, why = op.evaluate(signals)
            ranked.append(rank(values))
            reasons.append(why)
        stack = np.vstack(ranked)
        pick = self._pick(stack)
        score = stack[pick, np.arange(stack.shape[1])]
        return score, [reasons[k][i] for i, k in enumerate(pick.tolist())]

    def _pick(self, stack: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class Or(_Ranked):
    def _pick(self, stack: np.ndarray) -> np.ndarray:
        return stack.argmax(axis=0)


class And(_Ranked):
    def _pick(self, stack: np.ndarray) -> np.ndarray:
        return stack.argmin(axis=0)


class Product(Node):
    """``a * b``: the product of raw values; the reason is the first operand's that has one."""

    def __init__(self, *operands: Node) -> None:
        self.operands = operands

    def __repr__(self) -> str:
        return f"Product({', '.join(map(repr, self.operands))})"

    def terms(self) -> list[str]:
        return sorted({t for op in self.operands for t in op.terms()})

    def evaluate(self, signals: dict[str, np.ndarray]) -> tuple[np.ndarray, list[str | None]]:
        score: np.ndarray | None = None
        reasons: list[str | None] | None = None
        for op in self.operands:
            values, why = op.evaluate(signals)
            score = values if score is None else score * values
            reasons = why if reasons is None else [a or b for a, b in zip(reasons, why, strict=True)]
        assert score is not None and reasons is not None
        return score, reasons


# -- parsing -----------------------------------------------------------------------------


def parse(text: str, *, rank_window: int = 1000) -> Node:
    """Parse a policy expression (grammar in the module docstring).

    Raises
    ------
    ValueError
        With the position of the problem and the known terms.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"policy must be a non-empty expression such as 'margin', got {text!r}")
    tokens = _tokenize(text)
    parser = _Parser(text, tokens, rank_window)
    node = parser.expr()
    if parser.pos != len(tokens):
        raise ValueError(f"policy {text!r}: unexpected {tokens[parser.pos]!r} after a complete expression")
    return node


def _tokenize(text: str) -> list[str]:
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ValueError(f"policy {text!r}: cannot read {text[pos:].strip()!r}")
        tokens.append(match.group(1) or match.group(2).lower())
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str, tokens: list[str], rank_window: int) -> None:
        self.text, self.tokens, self.pos, self.window = text, tokens, 0, rank_window

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def expr(self) -> Node:
        return self._chain("or", Or, self._conj)

    def _conj(self) -> Node:
        return self._chain("and", And, self._prod)

    def _chain(self, word: str, cls: type[_Ranked], sub) -> Node:  # noqa: ANN001
        operands = [sub()]
        while self._peek() == word:
            self.pos += 1
            operands.append(sub())
        return operands[0] if len(operands) == 1 else cls(*operands, rank_window=self.window)

    def _prod(self) -> Node:
        operands = [self._atom()]
        while self._peek() == "*":
            self.pos += 1
            operands.append(self._atom())
        return operands[0] if len(operands) == 1 else Product(*operands)

    def _atom(self) -> Node:
        token = self._peek()
        if token is None:
            raise ValueError(f"policy {self.text!r}: expected a term or '(' at the end")
        self.pos += 1
        if token == "(":
            node = self.expr()
            if self._peek() != ")":
                raise ValueError(f"policy {self.text!r}: missing ')'")
            self.pos += 1
            return node
        name = _ALIASES.get(token, token)
        if name not in TERMS:
            raise ValueError(
                f"policy {self.text!r}: unknown term {token!r}; terms are {', '.join(TERMS)} "
                "combined with 'or', 'and', '*' and parentheses, or 'random' alone for random sampling"
            )
        return Term(name)


def uncertainty_signals(proba: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    """The uncertainty terms among ``names`` computed from ``(B, C)`` probabilities."""
    return {name: SCORES[name](proba) for name in names if name in SCORES}
