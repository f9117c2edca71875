"""What every response of a fan-out batch reads alike, kept from batch to batch.

The jurisdictions (statuses, recipient keys), the platforms' signing keys and the hub's signing
key change rarely, but when one changes (a suspension, a new recipient key, a rotation) the next
batch must see it. So the statement that locks a batch's responses also reads `VERSION` and the
active hub kid, and `current` reads the lookups again only when either differs from the kept ones.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Text, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.evidence import keys as hub_keys
from services.registry.reference.models import Jurisdiction, Platform
from services.registry.reference.rules import JurisdictionStatus
from services.registry.standing import rules
from shared.evidence import Signer


@dataclass(frozen=True)
class Lookups:
    """What every response of a batch reads alike: the jurisdictions with their statuses and
    recipient keys, the platforms' signing keys, and the hub's signing key. Kept from batch to
    batch while the batch's first statement says they are unchanged (`VERSION`, a digest of
    the jurisdictions and platforms, and the active hub kid): any change is seen by the next
    batch, as a read per batch would see it."""

    version: str | None  # None: no jurisdictions nor platforms at all
    statuses: dict[str, JurisdictionStatus]
    jurisdictions: dict[str, rules.Jurisdiction]
    keys: dict[str, dict[str, Any] | None]
    platform_keys: dict[str, dict[str, Any] | None]
    signer: Signer

    @classmethod
    async def load(cls, session: AsyncSession, *, version: str | None) -> Lookups:
        juris = (await session.execute(_JURISDICTIONS)).all()
        statuses = {j.code: JurisdictionStatus(j.status) for j in juris}
        return cls(
            version=version,
            statuses=statuses,
            jurisdictions={code: rules.Jurisdiction(code, st) for code, st in statuses.items()},
            keys={j.code: j.public_jwk for j in juris},
            platform_keys=dict((await session.execute(_PLATFORM_KEYS)).tuples().all()),
            signer=await hub_keys.active_signer(session),
        )


class _Kept:
    """The last batch's lookups. Keyed by content (the version digest, the kid), so a value
    kept from another database or a rolled-back change can only miss, never be wrong."""

    lookups: Lookups | None = None


async def current(session: AsyncSession, *, version: str | None, kid: str | None) -> Lookups:
    """The batch's lookups: the kept ones while current, else read again (the signer alone
    when only the hub key rotated)."""
    known = _Kept.lookups
    if known is None or known.version != version:
        known = await Lookups.load(session, version=version)
    elif known.signer.kid != kid:
        known = replace(known, signer=await hub_keys.active_signer(session))
    _Kept.lookups = known
    return known


# Built once: building a statement costs more than running these.
_JURISDICTIONS = select(Jurisdiction.code, Jurisdiction.status, Jurisdiction.public_jwk)
_PLATFORM_KEYS = select(Platform.slug, Platform.signing_jwk)
# Whether the lookups changed, read by the statement that locks the batch's responses (one
# round trip for both): a digest of what `Lookups` holds of jurisdictions and platforms.
VERSION = literal_column(
    "(SELECT md5(string_agg(concat_ws(' ', code, status, public_jwk), ',' ORDER BY code))"
    " FROM jurisdictions)"
    " || (SELECT md5(string_agg(concat_ws(' ', slug, signing_jwk), ',' ORDER BY slug))"
    " FROM platforms)",
    type_=Text,
)
