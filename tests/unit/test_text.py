"""The text types refuse what PostgreSQL cannot store, and case-reference look-alikes."""

from __future__ import annotations

import json
from typing import Annotated

import pytest
from pydantic import BaseModel, Field, ValidationError

from shared.text import CaseReference, StorableText, check_storable


class Body(BaseModel):
    note: Annotated[StorableText, Field(max_length=32)]
    notes: list[StorableText] = []


class Case(BaseModel):
    reference: CaseReference


@pytest.mark.parametrize(
    "value", ["plain", "", "Ünïcödé ✓", "日本語", "emoji 🙂", "tab\tand\nnewline", "\u200b"]
)
def test_storable_text_is_accepted_unchanged(value: str) -> None:
    assert Body(note=value).note == value


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ('"a\\u0000b"', "NUL"),
        ('"\\u0000"', "NUL"),
        ('"lone \\ud800 high"', "surrogate"),
        ('"lone \\udfff low"', "surrogate"),
    ],
)
def test_json_escapes_postgresql_cannot_store_are_refused(raw: str, reason: str) -> None:
    """Parsed the way FastAPI parses a body, then validated."""
    with pytest.raises(ValidationError, match=reason):
        Body.model_validate({"note": json.loads(raw)})
    with pytest.raises(ValidationError, match=reason):
        Body.model_validate({"note": "ok", "notes": ["fine", json.loads(raw)]})


def test_a_paired_surrogate_escape_is_a_real_character() -> None:
    assert Body.model_validate({"note": json.loads('"\\ud83d\\ude42"')}).note == "🙂"


def test_check_storable_names_the_problem_without_echoing_the_value() -> None:
    with pytest.raises(ValueError, match="NUL") as caught:
        check_storable("+33 6 12 34 56 78\x00")
    assert "+33" not in str(caught.value)


def test_length_limits_still_apply() -> None:
    with pytest.raises(ValidationError, match="at most 32"):
        Body(note="x" * 33)


@pytest.mark.parametrize("reference", ["FR-2026-0001", "paris/cyber.7", "A:b_c-d", "x", "9" * 64])
def test_ascii_case_references_are_accepted(reference: str) -> None:
    assert Case(reference=reference).reference == reference


@pytest.mark.parametrize(
    "reference",
    [
        "",
        "FR 2026",
        "FR-2026\n",
        "\u0420\u0415\u0424-1",  # Cyrillic letters that look like Latin ones
        "REF-\u0661",  # Arabic-Indic digit one
        "R\u0415F-1",  # a Cyrillic capital IE between Latin letters
        "ref\x00",
        "caf\u00e9",
        "x" * 65,
        "a;b",
    ],
)
def test_look_alike_and_odd_case_references_are_refused(reference: str) -> None:
    with pytest.raises(ValidationError):
        Case(reference=reference)
