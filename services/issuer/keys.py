"""The issuer's ES256 signing keys: create, rotate with a grace period, publish as a JWKS.

Rotation never invalidates a token in flight: the previous key stays published for the grace
period (at least a token lifetime), while new tokens are signed with the new key at once.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from joserfc.jwk import ECKey
from sqlalchemy.ext.asyncio import AsyncSession

from services.issuer import repository
from services.issuer.models import SigningKey

logger = logging.getLogger(__name__)

ALGORITHM = "ES256"


async def ensure_active_key(session: AsyncSession) -> None:
    """Create the first signing key if there is none; safe to call from every process."""
    await repository.lock_signing_keys(session)
    if await repository.get_active_key(session) is None:
        kid = await _create_key(session, now=datetime.now(UTC))
        logger.info("created signing key", extra={"kid": kid})


async def rotate(session: AsyncSession, *, grace: timedelta) -> str:
    """Sign with a new key from now on; the previous one stays published for `grace`."""
    await repository.lock_signing_keys(session)
    now = datetime.now(UTC)
    await repository.retire_active_keys(session, until=now + grace)
    kid = await _create_key(session, now=now)
    logger.info("rotated signing key", extra={"kid": kid, "grace_seconds": grace.total_seconds()})
    return kid


async def jwks(session: AsyncSession, *, now: datetime | None = None) -> dict[str, Any]:
    """The public keys resource servers may verify with: active, plus those in grace."""
    keys = await repository.get_published_keys(session, now=now or datetime.now(UTC))
    return {"keys": [key.public_jwk for key in keys]}


async def active_signing_key(session: AsyncSession) -> ECKey:
    """The private key to sign new tokens with, created on first use."""
    key = await repository.get_active_key(session)
    if key is None:
        await ensure_active_key(session)
        key = await repository.get_active_key(session)
        assert key is not None
    return ECKey.import_key(key.private_jwk)


async def _create_key(session: AsyncSession, *, now: datetime) -> str:
    key = ECKey.generate_key("P-256", parameters={"alg": ALGORITHM, "use": "sig"}, auto_kid=True)
    kid = key.kid
    assert kid is not None
    await repository.create_signing_key(
        session,
        key=SigningKey(
            kid=kid,
            private_jwk=key.as_dict(private=True),
            public_jwk=key.as_dict(private=False),
            activated_at=now,
        ),
    )
    return kid
