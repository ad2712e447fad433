"""Every model answers ``committee_proba``: ``None`` or one aligned ``(B, C)`` array per member."""

from __future__ import annotations

import numpy as np
import pytest

from streamer.models import build_model
from tests.contract.specs import MODEL_SPECS
from tests.contract.test_model_contract import KEY, trained


@pytest.fixture(params=MODEL_SPECS)
def spec(request: pytest.FixtureRequest) -> str:
    return request.param


def test_committee_before_any_class_has_members_but_no_columns(spec: str) -> None:
    committee = build_model(spec).committee_proba(np.zeros((5, 4)))
    assert committee is None or (committee.shape[1:] == (5, 0) and committee.shape[0] >= 1)


def test_each_member_gives_a_probability_row_per_item_and_class(spec: str) -> None:
    model, X, _ = trained(spec)
    committee = model.committee_proba(X[:50])
    if committee is None:
        return
    assert committee.shape[1:] == (50, len(model.classes)) and committee.shape[0] >= 1
    assert np.all(committee >= 0.0)
    np.testing.assert_allclose(committee.sum(axis=2), 1.0, atol=1e-9)


def test_asking_the_committee_changes_nothing(spec: str) -> None:
    model, X, _ = trained(spec)
    before = model.to_bytes(KEY)
    model.committee_proba(X)
    assert model.to_bytes(KEY) == before


def test_round_trip_gives_an_identical_committee(spec: str) -> None:
    model, X, _ = trained(spec)
    restored = type(model).from_bytes(model.to_bytes(KEY), KEY)
    expected, got = model.committee_proba(X), restored.committee_proba(X)
    if expected is None:
        assert got is None
    else:
        np.testing.assert_array_equal(got, expected)
