"""The rows a registration plans before its one call: the answer is a valid `CaseOut`."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from services.registry.cases import registration
from services.registry.cases.rules import ReleasePolicy
from services.registry.cases.schemas import CaseOut, SelectorIn
from services.registry.cases.selectors import SelectorKind
from services.registry.context import Actor, Context
from tests import factories

CTX = Context(hmac_key=b"k" * 32, topic_prefix="t")
ACTOR = Actor(client_id="authority-fr", jurisdiction="FR")
SELECTORS = [
    SelectorIn(kind=SelectorKind.PHONE_NUMBER, value="+33 6 12 34 56 78"),
    SelectorIn(kind=SelectorKind.EMAIL, value="Someone@Example.eu"),
    SelectorIn(kind=SelectorKind.ACCOUNT_HANDLE, value="@Handle"),
]


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"selectors": SELECTORS, "emergency": True},
        {"coordinating_jurisdiction": "DE", "release_policy": ReleasePolicy.MEMBERS},
        {"lead_case_id": uuid.uuid4(), "reference": "AB/12:x_y-z"},
    ],
)
def test_the_planned_answer_is_what_validation_would_build(overrides: dict[str, Any]) -> None:
    """The answer is built without validating it again: it must be the same model anyway."""
    out, _ = registration.plan(ACTOR, factories.case(**overrides), CTX)
    validated = CaseOut.model_validate(out.model_dump())
    assert validated == out
    assert validated.model_dump(mode="json") == out.model_dump(mode="json")
    assert out.model_dump_json() == validated.model_dump_json()
