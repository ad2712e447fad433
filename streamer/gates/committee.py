"""Committee disagreement on a ``(K, B, C)`` array of member class probabilities.

A committee is ``K`` learners (river bagging / ARF members, the heads of an ensemble) that each
give a ``(B, C)`` probability array for the same batch. Both scores return ``(B,)`` in
``[0, 1]``: 0 when every member says the same, 1 at the largest disagreement ``K`` members can
show over ``C`` classes.

Both are the equal-weight Jensen-Shannon divergence of the members' distributions,
``H(mean_k p_k) - mean_k H(p_k)``, divided by its upper bound ``log min(K, C)`` (it is at most
``log K`` as a JS divergence and at most ``log C`` as an entropy):

- :func:`vote_entropy` (Dagan & Engelson 1995) uses each member's *hard vote*. Without ties
  this is exactly the entropy of the vote shares. A member tied between several classes splits
  its vote evenly among them, and the split's own entropy is subtracted, so a committee of
  identical (even tied) members scores 0 and the score does not depend on class order.
- :func:`mean_kl` (McCallum & Nigam 1998) uses the soft distributions:
  ``mean_k KL(p_k || mean p)`` equals the JS divergence above. Because it is bounded by
  ``log min(K, C)`` we divide by that bound instead of squashing with ``1 - exp(-x)``: the
  mapping stays linear (twice the divergence is twice the score, as for :func:`vote_entropy`),
  reaches 1 for ``K <= C`` members that are certain of different classes, and does not
  compress the upper range where the informative items lie.

Conventions shared with :mod:`streamer.core.scores`: rows are renormalised, an all-zero (or
negative/NaN) row counts as uniform. With ``K == 1`` or ``C < 2`` nothing can disagree and
every item scores 0.

Examples
--------
>>> import numpy as np
>>> P = np.array([[[0.9, 0.1], [0.6, 0.4]],   # member 1, two items
...               [[0.1, 0.9], [0.6, 0.4]]])  # member 2
>>> vote_entropy(P).tolist()
[1.0, 0.0]
>>> mean_kl(P).round(3).tolist()
[0.531, 0.0]
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from streamer.core.scores import _normalised

__all__ = ["DISAGREEMENTS", "mean_kl", "vote_entropy"]

DisagreementFn = Callable[[np.ndarray], np.ndarray]


def _members(proba: np.ndarray) -> np.ndarray:
    """Validate a ``(K, B, C)`` array and return it with every row normalised."""
    P = np.asarray(proba, dtype=np.float64)
    if P.ndim != 3:
        raise ValueError(
            f"committee proba must be a 3-d (members, batch, classes) array, got shape {P.shape}; "
            "stack the members' (B, C) arrays with np.stack(list_of_arrays)"
        )
    K, B, C = P.shape
    if K == 0:
        raise ValueError("the committee has no members; pass at least one (B, C) array")
    rows, _ = _normalised(P.reshape(K * B, C))
    return rows.reshape(K, B, C)


def _row_entropy(P: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) along the last axis."""
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(P > 0.0, P * np.log(P), 0.0)
    return -plogp.sum(axis=-1)


def _normalised_js(P: np.ndarray) -> np.ndarray:
    """``(H(mean_k P_k) - mean_k H(P_k)) / log min(K, C)`` for a normalised ``(K, B, C)`` array."""
    K, B, C = P.shape
    if K < 2 or C < 2:
        return np.zeros(B, dtype=np.float64)
    js = _row_entropy(P.mean(axis=0)) - _row_entropy(P).mean(axis=0)
    # + 0.0 turns a -0.0 into 0.0; clip absorbs rounding around the bounds
    return np.clip(js / np.log(min(K, C)), 0.0, 1.0) + 0.0


def vote_entropy(proba: np.ndarray) -> np.ndarray:
    """Entropy of the members' hard votes, divided by ``log min(K, C)``.

    Parameters
    ----------
    proba
        ``(K, B, C)`` class probabilities of ``K`` members for ``B`` items.

    Returns
    -------
    numpy.ndarray
        ``(B,)`` scores in ``[0, 1]``; 0 when all members vote alike.

    Examples
    --------
    >>> import numpy as np
    >>> votes = np.eye(3)[[[0], [1], [2]]]  # three members, one item, three different votes
    >>> vote_entropy(votes).round(6).tolist()
    [1.0]
    """
    P = _members(proba)
    top = P.max(axis=-1, keepdims=True)
    hard = (top == P).astype(np.float64)
    hard /= hard.sum(axis=-1, keepdims=True)  # a tie splits the member's vote evenly
    return _normalised_js(hard)


def mean_kl(proba: np.ndarray) -> np.ndarray:
    """Mean KL divergence of the members to their consensus, divided by ``log min(K, C)``.

    Parameters
    ----------
    proba
        ``(K, B, C)`` class probabilities of ``K`` members for ``B`` items.

    Returns
    -------
    numpy.ndarray
        ``(B,)`` scores in ``[0, 1]``; 0 when all members give the same distribution.

    Examples
    --------
    >>> import numpy as np
    >>> P = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])  # two members, certain of different classes
    >>> mean_kl(P).tolist()
    [1.0]
    """
    return _normalised_js(_members(proba))


DISAGREEMENTS: dict[str, DisagreementFn] = {
    "vote-entropy": vote_entropy,
    "mean-kl": mean_kl,
}
