"""Administering the reference data that standing depends on: jurisdictions and platforms.

A jurisdiction's status decides whether it can receive anything, and its public key decides who
can read what it receives, so every change is checked before anything is written and is
recorded in the audit log in the same transaction, and a change of either takes two
administrators (`services.registry.approvals`). Free text (notes) is never copied into the
audit log, which cannot be redacted later; the log names the field that changed instead.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, Field, model_validator
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.approvals import service as approvals
from services.registry.approvals.service import PendingChangeOut
from services.registry.audit import service as audit
from services.registry.reference.models import Jurisdiction, Platform
from services.registry.reference.rules import JurisdictionStatus
from shared import evidence
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.schemas import Code, ShortText, Slug, Strict
from shared.text import StorableText, check_storable_json

Note = Annotated[StorableText, Field(max_length=500)]


class JurisdictionOut(Strict):
    code: str
    name: str
    status: JurisdictionStatus
    note: str | None
    public_jwk: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


class _Patch(Strict):
    """A partial update: at least one field, and null only where the field may be cleared."""

    NULLABLE: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _meaningful(self) -> _Patch:
        if not self.model_fields_set:
            raise ValueError("name at least one field to change")
        nulls = [f for f in self.model_fields_set if getattr(self, f) is None]
        if refused := sorted(set(nulls) - self.NULLABLE):
            raise ValueError(f"{', '.join(refused)} cannot be null")
        return self


class JurisdictionUpdate(_Patch):
    """Change a jurisdiction's name, note or status, or register its recipient public key."""

    NULLABLE: ClassVar[frozenset[str]] = frozenset({"note"})

    name: ShortText | None = None
    note: Note | None = None
    status: JurisdictionStatus | None = None
    public_jwk: Annotated[dict[str, Any] | None, AfterValidator(check_storable_json)] = Field(
        default=None, description="EC P-256 or OKP X25519 public key for sealed disclosures"
    )


class PlatformOut(Strict):
    slug: str
    name: str
    legal_rep_jurisdiction: str
    signing_jwk: dict[str, Any] | None = None
    created_at: datetime
    updated_at: datetime


class PlatformCreate(Strict):
    slug: Slug
    name: ShortText
    legal_rep_jurisdiction: Code


class PlatformUpdate(_Patch):
    NULLABLE: ClassVar[frozenset[str]] = frozenset({"signing_jwk"})

    name: ShortText | None = None
    legal_rep_jurisdiction: Code | None = None
    signing_jwk: Annotated[dict[str, Any] | None, AfterValidator(check_storable_json)] = Field(
        default=None,
        description="EC P-256 public key the platform signs its disclosures with (ES256);"
        " null removes it",
    )


def _jurisdiction_out(row: Jurisdiction) -> JurisdictionOut:
    return JurisdictionOut.model_validate(row, from_attributes=True)


def _platform_out(row: Platform) -> PlatformOut:
    return PlatformOut.model_validate(row, from_attributes=True)


async def list_jurisdictions(
    session: AsyncSession, *, limit: int, after: str | None = None
) -> tuple[list[JurisdictionOut], str | None]:
    """Jurisdictions by code; the cursor is the last code of the previous page."""
    query = select(Jurisdiction).order_by(Jurisdiction.code).limit(limit + 1)
    if after is not None:
        query = query.where(Jurisdiction.code > after)
    rows = (await session.scalars(query)).all()
    page = [_jurisdiction_out(r) for r in rows[:limit]]
    return page, page[-1].code if len(rows) > limit else None


class JurisdictionChanged(Strict):
    """What a PATCH did: the jurisdiction now (name and note apply at once), and the change of
    status or key it proposed for a second administrator's approval, if any."""

    jurisdiction: JurisdictionOut
    pending: PendingChangeOut | None


async def update_jurisdiction(
    session: AsyncSession, *, actor: str, code: str, data: JurisdictionUpdate
) -> JurisdictionChanged:
    """Apply a checked change of name or note and audit it; propose a change of status or key
    (four eyes, `services.registry.approvals`). A field that changes nothing is ignored."""
    row = await session.get(Jurisdiction, code, with_for_update=True)
    if row is None:
        raise NotFound(f"no jurisdiction {code}")
    key = None
    if data.public_jwk is not None:
        key = await approvals.checked_key(session, code, data.public_jwk)
    # Everything is checked above; from here on the row changes and nothing can refuse.
    status = None
    if data.status is not None and data.status.value != row.status:
        status = data.status.value
    if key is not None and key["kid"] == (row.public_jwk or {}).get("kid"):
        key = None
    changes: dict[str, Any] = {}
    if data.name is not None and data.name != row.name:
        changes["name"] = {"from": row.name, "to": data.name}
        row.name = data.name
    if "note" in data.model_fields_set and data.note != row.note:
        changes["note"] = "changed"
        row.note = data.note
    if changes:
        row.updated_at = datetime.now(UTC)
        await session.flush()
        await audit.append(
            session,
            actor=actor,
            action="jurisdiction.updated",
            subject_type="jurisdiction",
            subject_id=code,
            details=changes,
        )
    pending = None
    if status is not None or key is not None:
        pending = await approvals.propose(session, actor=actor, row=row, status=status, key=key)
    return JurisdictionChanged(jurisdiction=_jurisdiction_out(row), pending=pending)


async def approve_change(
    session: AsyncSession, *, actor: str, change_id: uuid.UUID
) -> JurisdictionOut:
    """A second administrator applies a proposed change of status or key."""
    return _jurisdiction_out(await approvals.approve(session, actor=actor, change_id=change_id))


async def list_platforms(
    session: AsyncSession, *, limit: int, after: str | None = None
) -> tuple[list[PlatformOut], str | None]:
    """Platforms by slug; the cursor is the last slug of the previous page."""
    query = select(Platform).order_by(Platform.slug).limit(limit + 1)
    if after is not None:
        query = query.where(Platform.slug > after)
    rows = (await session.scalars(query)).all()
    page = [_platform_out(r) for r in rows[:limit]]
    return page, page[-1].slug if len(rows) > limit else None


async def _known_jurisdiction(session: AsyncSession, code: str) -> None:
    if await session.get(Jurisdiction, code) is None:
        raise ValidationFailed(f"unknown jurisdiction {code}")


async def get_platform(session: AsyncSession, *, slug: str) -> PlatformOut:
    """One platform by slug (where `POST /platforms` points its Location)."""
    row = await session.get(Platform, slug)
    if row is None:
        raise NotFound(f"no platform {slug!r}")
    return _platform_out(row)


async def create_platform(
    session: AsyncSession, *, actor: str, data: PlatformCreate
) -> PlatformOut:
    """Register a platform; a slug that exists already is a conflict, never an overwrite."""
    await _known_jurisdiction(session, data.legal_rep_jurisdiction)
    now = datetime.now(UTC)
    created = await session.scalar(
        insert(Platform)
        .values(**data.model_dump(), created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=["slug"])
        .returning(Platform.slug)
    )
    if created is None:
        raise Conflict(f"platform {data.slug!r} already exists")
    await audit.append(
        session,
        actor=actor,
        action="platform.registered",
        subject_type="platform",
        subject_id=data.slug,
        details={"name": data.name, "legal_rep_jurisdiction": data.legal_rep_jurisdiction},
    )
    row = await session.get(Platform, data.slug)
    assert row is not None
    return _platform_out(row)


async def update_platform(
    session: AsyncSession, *, actor: str, slug: str, data: PlatformUpdate
) -> PlatformOut:
    """Rename a platform or move its legal representative; the slug never changes."""
    row = await session.get(Platform, slug, with_for_update=True)
    if row is None:
        raise NotFound(f"no platform {slug!r}")
    changes: dict[str, Any] = {}
    rep = data.legal_rep_jurisdiction
    if rep is not None:
        await _known_jurisdiction(session, rep)
    if data.name is not None and data.name != row.name:
        changes["name"] = {"from": row.name, "to": data.name}
        row.name = data.name
    if rep is not None and rep != row.legal_rep_jurisdiction:
        changes["legal_rep_jurisdiction"] = {"from": row.legal_rep_jurisdiction, "to": rep}
        row.legal_rep_jurisdiction = rep
    if "signing_jwk" in data.model_fields_set:
        key = None
        if data.signing_jwk is not None:
            try:
                key = evidence.validate_signing_jwk(data.signing_jwk)
            except evidence.VerificationFailed as exc:
                raise ValidationFailed(f"signing_jwk is refused: {exc}") from None
        if key != row.signing_jwk:
            old = row.signing_jwk["kid"] if row.signing_jwk else None
            changes["signing_key"] = {"from": old, "to": key["kid"] if key else None}
            row.signing_jwk = key
    if changes:
        row.updated_at = datetime.now(UTC)
        await session.flush()
        await audit.append(
            session,
            actor=actor,
            action="platform.updated",
            subject_type="platform",
            subject_id=slug,
            details=changes,
        )
    return _platform_out(row)
