"""Reference data shipped with caseshare: jurisdictions and platforms.

The JSON files in ``data/`` are the reviewed, sourced starting point that the registry
loads idempotently into its tables. This module only reads and validates them (no
database), so a bad edit to the data fails fast in unit tests rather than at start-up.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.registry.reference.rules import JurisdictionStatus

DATA_DIR = Path(__file__).parent / "data"
_CODE = re.compile(r"[A-Z]{2}")
_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


class ReferenceDataError(ValueError):
    """The shipped reference data is malformed or inconsistent."""


@dataclass(frozen=True, slots=True)
class ReferenceJurisdiction:
    code: str
    name: str
    status: JurisdictionStatus
    note: str | None = None


@dataclass(frozen=True, slots=True)
class ReferencePlatform:
    slug: str
    name: str
    legal_rep_jurisdiction: str


@dataclass(frozen=True, slots=True)
class ReferenceData:
    jurisdictions: tuple[ReferenceJurisdiction, ...]
    platforms: tuple[ReferencePlatform, ...]
    sources: tuple[str, ...]


def load_reference(data_dir: Path = DATA_DIR) -> ReferenceData:
    """Read and cross-check both files, so platforms never name an unknown jurisdiction."""
    j_doc = _read(data_dir / "jurisdictions.json", "jurisdictions")
    p_doc = _read(data_dir / "platforms.json", "platforms")
    jurisdictions = parse_jurisdictions(j_doc["jurisdictions"])
    platforms = parse_platforms(p_doc["platforms"], known={j.code for j in jurisdictions})
    sources = tuple(_strings(j_doc["source"], "source") + _strings(p_doc["source"], "source"))
    return ReferenceData(jurisdictions, platforms, sources)


def parse_jurisdictions(rows: Sequence[Any]) -> tuple[ReferenceJurisdiction, ...]:
    """Validate jurisdiction rows: ISO-style codes, unique, with a known status."""
    parsed = []
    for row in _objects(rows, "jurisdiction"):
        code = _text(row, "code")
        if not _CODE.fullmatch(code):
            raise ReferenceDataError(f"jurisdiction code {code!r} is not two upper-case letters")
        try:
            status = JurisdictionStatus(_text(row, "status"))
        except ValueError:
            raise ReferenceDataError(f"jurisdiction {code} has an unknown status") from None
        note = row.get("note")
        if note is not None and not (isinstance(note, str) and note.strip()):
            raise ReferenceDataError(f"jurisdiction {code} has an empty or non-text note")
        parsed.append(ReferenceJurisdiction(code, _text(row, "name"), status, note))
    _require_unique([j.code for j in parsed], "jurisdiction code")
    return tuple(sorted(parsed, key=lambda j: j.code))


def parse_platforms(rows: Sequence[Any], *, known: set[str]) -> tuple[ReferencePlatform, ...]:
    """Validate platform rows: slug form, unique, legal representative among ``known``."""
    parsed = []
    for row in _objects(rows, "platform"):
        slug, rep = _text(row, "slug"), _text(row, "legal_rep_jurisdiction")
        if not _SLUG.fullmatch(slug):
            raise ReferenceDataError(f"platform slug {slug!r} is not lower-case words and dashes")
        if rep not in known:
            raise ReferenceDataError(f"platform {slug} names unknown jurisdiction {rep!r}")
        parsed.append(ReferencePlatform(slug, _text(row, "name"), rep))
    _require_unique([p.slug for p in parsed], "platform slug")
    return tuple(sorted(parsed, key=lambda p: p.slug))


def _read(path: Path, key: str) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ReferenceDataError(f"cannot read {path.name}: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get(key), list) or "source" not in doc:
        raise ReferenceDataError(f"{path.name} needs a top-level 'source' and a '{key}' list")
    return doc


def _objects(rows: Sequence[Any], what: str) -> list[dict[str, Any]]:
    if not all(isinstance(row, dict) for row in rows):
        raise ReferenceDataError(f"every {what} entry must be an object")
    return list(rows)


def _text(row: dict[str, Any], field: str) -> str:
    value = row.get(field)
    if not isinstance(value, str) or not value.strip():
        raise ReferenceDataError(f"field {field!r} must be non-empty text")
    return value


def _strings(value: Any, field: str) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(s, str) and s for s in items):
        raise ReferenceDataError(f"field {field!r} must be text or a list of text")
    return items


def _require_unique(values: list[str], what: str) -> None:
    duplicates = sorted({v for v in values if values.count(v) > 1})
    if duplicates:
        raise ReferenceDataError(f"duplicate {what}: {', '.join(duplicates)}")
