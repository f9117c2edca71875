"""The hub's own signing keys (ES256): evidence records and the signed payload of deliveries.

Separate from the OAuth token key on purpose: a token key rotates in minutes and its old keys
vanish after a grace period, while evidence must verify for as long as anyone may be asked to
prove what happened. So a retired key's private half is dropped but its public half stays
published on `/.well-known/evidence-jwks.json` for good; a new key signs from the rotation on.

Private keys are sealed under the key-encryption key ring (`shared.keywrap`), bound to their
kid, as the issuer's token keys are. Opened keys are cached per (kid, sealed value), so the
router and intake open a key once, not per record. The router keeps the signer across fan-out
batches and checks per batch, with `ACTIVE_KID` inside a statement it runs anyway, that no
rotation has happened since.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from functools import cache
from typing import Any, NamedTuple

from joserfc.jwk import ECKey
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.evidence.models import HubSigningKey
from shared.evidence import Signer, generate_signer, public_jwk
from shared.keywrap import KeyEncryptionSettings, KeyRing
from shared.settings import CommonSettings

logger = logging.getLogger(__name__)

KEYS_LOCK = 0x0CA5E5E71D  # advisory lock serialising key creation and rotation
_opened: dict[tuple[str, str], Signer] = {}


@cache
def configured_ring() -> KeyRing:
    """The KEK ring from KEY_ENCRYPTION_KEY (or its file, or the dev state folder)."""
    return KeyEncryptionSettings().key_ring(CommonSettings().state_dir)


async def _lock(session: AsyncSession) -> None:
    await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": KEYS_LOCK})


class _Active(NamedTuple):
    kid: str
    sealed_private_jwk: str | None


# Built once: every evidence record and fan-out batch asks, and building and keying a statement
# (or loading an ORM entity) cost more than running it.
_NEWEST_ACTIVE = (
    select(HubSigningKey.kid)
    .where(HubSigningKey.retired_at.is_(None))
    .order_by(HubSigningKey.activated_at.desc())
    .limit(1)
)
_ACTIVE = _NEWEST_ACTIVE.add_columns(HubSigningKey.sealed_private_jwk)
#: The kid that signs now, as a column of another statement: a caller holding a signer from
#: `active_signer` checks it is still current without a round trip of its own.
ACTIVE_KID = _NEWEST_ACTIVE.scalar_subquery()


async def _active(session: AsyncSession) -> _Active | None:
    row = (await session.execute(_ACTIVE)).first()
    return _Active(row.kid, row.sealed_private_jwk) if row is not None else None


async def _create(session: AsyncSession, ring: KeyRing) -> Signer:
    signer = generate_signer()
    private = json.dumps(signer.key.as_dict(private=True)).encode()
    session.add(
        HubSigningKey(
            kid=signer.kid,
            public_jwk=public_jwk(signer),
            sealed_private_jwk=ring.seal(private, context=signer.kid),
            activated_at=datetime.now(UTC),
        )
    )
    await session.flush()
    logger.info("created hub signing key", extra={"kid": signer.kid})
    return signer


def _open(ring: KeyRing, row: _Active) -> Signer:
    assert row.sealed_private_jwk is not None
    cached = _opened.get((row.kid, row.sealed_private_jwk))
    if cached is None:
        jwk = json.loads(ring.open(row.sealed_private_jwk, context=row.kid))
        cached = Signer(kid=row.kid, key=ECKey.import_key(jwk))
        _opened[(row.kid, row.sealed_private_jwk)] = cached
    return cached


async def active_signer(session: AsyncSession, ring: KeyRing | None = None) -> Signer:
    """The key that signs now; made (once, under a lock) on first use."""
    ring = ring or configured_ring()
    row = await _active(session)
    if row is None:
        await _lock(session)
        row = await _active(session)
        if row is None:
            return await _create(session, ring)
    return _open(ring, row)


async def rotate(session: AsyncSession, ring: KeyRing | None = None) -> str:
    """Sign with a new key from now on; the old one's public half stays published."""
    ring = ring or configured_ring()
    await _lock(session)
    await session.execute(
        update(HubSigningKey)
        .where(HubSigningKey.retired_at.is_(None))
        .values(retired_at=datetime.now(UTC), sealed_private_jwk=None)
    )
    return (await _create(session, ring)).kid


async def jwks(session: AsyncSession) -> dict[str, Any]:
    """Every hub signing key ever used, the active one first: evidence outlives rotations."""
    rows = (
        await session.scalars(
            select(HubSigningKey).order_by(
                HubSigningKey.retired_at.is_not(None), HubSigningKey.activated_at.desc()
            )
        )
    ).all()
    return {"keys": [row.public_jwk for row in rows]}
