"""Checks on the shipped reference data and on the loader's validation."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import pytest

from services.registry.reference.loader import (
    ReferenceData,
    ReferenceDataError,
    ReferenceJurisdiction,
    load_reference,
    parse_jurisdictions,
    parse_platforms,
)
from services.registry.reference.rules import JurisdictionStatus

_EU = "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE"
_AGREEMENTS = "AL BA GE IS LI MD ME MK NO RS CH UA GB US"
EU_MEMBER_STATES = frozenset(_EU.split())
COOPERATION_PARTNERS = frozenset(_AGREEMENTS.split())


@cache
def shipped() -> ReferenceData:
    return load_reference()


@cache
def by_code() -> dict[str, ReferenceJurisdiction]:
    return {j.code: j for j in shipped().jurisdictions}


def row(**overrides: Any) -> dict[str, Any]:
    return {"code": "FR", "name": "France", "status": "member"} | overrides


def test_all_27_eu_member_states_are_present() -> None:
    assert len(EU_MEMBER_STATES) == 27
    assert by_code().keys() >= EU_MEMBER_STATES


def test_eu_states_other_than_denmark_are_members() -> None:
    statuses = {by_code()[c].status for c in EU_MEMBER_STATES - {"DK"}}
    assert statuses == {JurisdictionStatus.MEMBER}


def test_denmark_is_a_partner_with_a_note_on_its_opt_out() -> None:
    dk = by_code()["DK"]
    assert dk.status is JurisdictionStatus.PARTNER
    assert dk.note is not None
    assert "Protocol No 22" in dk.note


def test_cooperation_agreement_countries_are_partners() -> None:
    assert {by_code()[c].status for c in COOPERATION_PARTNERS} == {JurisdictionStatus.PARTNER}


def test_south_korea_is_associated() -> None:
    assert by_code()["KR"].status is JurisdictionStatus.ASSOCIATED


def test_codes_are_unique_and_sorted() -> None:
    codes = [j.code for j in shipped().jurisdictions]
    assert codes == sorted(set(codes))


def test_telegram_is_present_with_a_known_representative() -> None:
    platforms = {p.slug: p for p in shipped().platforms}
    assert "telegram" in platforms
    assert all(p.legal_rep_jurisdiction in by_code() for p in platforms.values())


def test_sources_cite_the_eurojust_regulation() -> None:
    assert any("2018/1727" in source for source in shipped().sources)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([row(code="fr")], "two upper-case letters"),
        ([row(code="FRA")], "two upper-case letters"),
        ([row(status="observer")], "unknown status"),
        ([row(), row()], "duplicate jurisdiction code: FR"),
        ([row(name="")], "'name' must be non-empty"),
        ([row(note="  ")], "empty or non-text note"),
        (["FR"], "must be an object"),
    ],
)
def test_bad_jurisdiction_rows_are_rejected(rows: list[Any], message: str) -> None:
    with pytest.raises(ReferenceDataError, match=message):
        parse_jurisdictions(rows)


def platform(**overrides: Any) -> dict[str, Any]:
    return {"slug": "chirp", "name": "Chirp", "legal_rep_jurisdiction": "IE"} | overrides


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([platform(slug="Chirp")], "lower-case"),
        ([platform(legal_rep_jurisdiction="XX")], "unknown jurisdiction"),
        ([platform(), platform()], "duplicate platform slug: chirp"),
    ],
)
def test_bad_platform_rows_are_rejected(rows: list[Any], message: str) -> None:
    with pytest.raises(ReferenceDataError, match=message):
        parse_platforms(rows, known={"IE"})


@pytest.mark.parametrize(
    ("name", "write"),
    [
        ("jurisdictions.json", lambda: "{not json"),
        ("jurisdictions.json", lambda: '{"jurisdictions": []}'),
        ("platforms.json", lambda: '{"source": "x", "platforms": {}}'),
    ],
)
def test_malformed_files_are_rejected(tmp_path: Any, name: str, write: Callable[[], str]) -> None:
    (tmp_path / "jurisdictions.json").write_text('{"source": "x", "jurisdictions": []}')
    (tmp_path / "platforms.json").write_text('{"source": "x", "platforms": []}')
    (tmp_path / name).write_text(write())
    with pytest.raises(ReferenceDataError):
        load_reference(tmp_path)
