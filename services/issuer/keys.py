"""The issuer's ES256 signing keys: create, rotate with a grace period, publish as a JWKS.

Rotation never invalidates a token in flight: the previous key stays published for the grace
period (at least a token lifetime), while new tokens are signed with the new key at once.

Private keys are stored sealed under the key-encryption key ring (`shared.keywrap`), bound to
their kid. When the ring's current KEK changes the active key is sealed again at start; when
the ring cannot open it at all (a lost KEK, a wrong state folder) the key is retired and a new
one made, since a key no one can use must not stop tokens being issued.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from joserfc.jwk import ECKey
from sqlalchemy.ext.asyncio import AsyncSession

from services.issuer import repository
from services.issuer.models import SigningKey
from shared.keywrap import KeyEncryptionSettings, KeyRing, SealError
from shared.settings import CommonSettings

logger = logging.getLogger(__name__)

ALGORITHM = "ES256"
# A key that cannot be opened is retired with the default grace: its tokens stay valid.
UNUSABLE_KEY_GRACE = timedelta(seconds=900)


def configured_ring() -> KeyRing:
    """The ring the environment configures, for callers without settings of their own."""
    return KeyEncryptionSettings().key_ring(CommonSettings().state_dir)


async def ensure_active_key(session: AsyncSession, ring: KeyRing | None = None) -> None:
    """Make sure an active key exists that `ring` opens; safe to call from every process."""
    ring = ring or configured_ring()
    await repository.lock_signing_keys(session)
    now = datetime.now(UTC)
    active = await repository.get_active_key(session)
    if active is not None and active.sealed_private_jwk is not None:
        try:
            private = _open(ring, active)
        except SealError:
            logger.warning("retiring a signing key no configured KEK opens", extra=_kid(active))
            await repository.retire_active_keys(session, until=now + UNUSABLE_KEY_GRACE)
        else:
            if not ring.is_current(active.sealed_private_jwk):
                active.sealed_private_jwk = _seal(ring, active.kid, private)
                logger.info("sealed signing key under the current KEK", extra=_kid(active))
            return
    kid = await _create_key(session, now=now, ring=ring)
    logger.info("created signing key", extra={"kid": kid})


async def rotate(session: AsyncSession, *, grace: timedelta, ring: KeyRing | None = None) -> str:
    """Sign with a new key from now on; the previous one stays published for `grace`."""
    ring = ring or configured_ring()
    await repository.lock_signing_keys(session)
    now = datetime.now(UTC)
    await repository.retire_active_keys(session, until=now + grace)
    kid = await _create_key(session, now=now, ring=ring)
    logger.info("rotated signing key", extra={"kid": kid, "grace_seconds": grace.total_seconds()})
    return kid


async def jwks(session: AsyncSession, *, now: datetime | None = None) -> dict[str, Any]:
    """The public keys resource servers may verify with: active, plus those in grace."""
    keys = await repository.get_published_keys(session, now=now or datetime.now(UTC))
    return {"keys": [key.public_jwk for key in keys]}


async def active_signing_key(session: AsyncSession, ring: KeyRing) -> ECKey:
    """The private key to sign new tokens with, created on first use."""
    key = await repository.get_active_key(session)
    if key is None or key.sealed_private_jwk is None:
        await ensure_active_key(session, ring)
        key = await repository.get_active_key(session)
        assert key is not None
    return ECKey.import_key(_open(ring, key))


def _open(ring: KeyRing, key: SigningKey) -> dict[str, Any]:
    if key.sealed_private_jwk is None:
        raise SealError("the key has no private part")
    private: dict[str, Any] = json.loads(ring.open(key.sealed_private_jwk, context=key.kid))
    return private


def _seal(ring: KeyRing, kid: str, private: dict[str, Any]) -> str:
    return ring.seal(json.dumps(private).encode(), context=kid)


def _kid(key: SigningKey) -> dict[str, str]:
    return {"kid": key.kid}


async def _create_key(session: AsyncSession, *, now: datetime, ring: KeyRing) -> str:
    key = ECKey.generate_key("P-256", parameters={"alg": ALGORITHM, "use": "sig"}, auto_kid=True)
    kid = key.kid
    assert kid is not None
    await repository.create_signing_key(
        session,
        key=SigningKey(
            kid=kid,
            sealed_private_jwk=_seal(ring, kid, dict(key.as_dict(private=True))),
            public_jwk=key.as_dict(private=False),
            activated_at=now,
        ),
    )
    return kid
