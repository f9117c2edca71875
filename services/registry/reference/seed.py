"""Loading the shipped reference data, idempotently, and the demo recipient keys.

Jurisdictions and platforms are upserted by code and slug: an operator's later status change
(through the admin API) is kept, because only missing rows are inserted. Demo key pairs are
generated for jurisdictions that have no registered public key, and their private halves are
written to the state directory, where the demo tooling decrypts with them.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.reference.loader import ReferenceData, load_reference
from services.registry.reference.models import Jurisdiction, Platform
from shared import sealing
from shared.files import write_private


async def load(session: AsyncSession, data: ReferenceData | None = None) -> None:
    """Insert the reference jurisdictions and platforms that are not there yet."""
    data = data or load_reference()
    if data.jurisdictions:
        await session.execute(
            insert(Jurisdiction)
            .values(
                [
                    {"code": j.code, "name": j.name, "status": j.status.value, "note": j.note}
                    for j in data.jurisdictions
                ]
            )
            .on_conflict_do_nothing(index_elements=["code"])
        )
    if data.platforms:
        await session.execute(
            insert(Platform)
            .values(
                [
                    {
                        "slug": p.slug,
                        "name": p.name,
                        "legal_rep_jurisdiction": p.legal_rep_jurisdiction,
                    }
                    for p in data.platforms
                ]
            )
            .on_conflict_do_nothing(index_elements=["slug"])
        )
    # A few dozen rows never reach autovacuum's analyze threshold, and without statistics the
    # planner assumes hundreds of jurisdictions: the router's per-jurisdiction probe of open
    # cases then looks dearer than a scan of every case.
    await session.execute(text("ANALYZE jurisdictions, platforms"))


async def ensure_demo_keys(session: AsyncSession, keys_dir: Path) -> list[str]:
    """Give every keyless jurisdiction a demo key pair; returns the codes that got one."""
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)  # noqa: ASYNC240 - start-up only
    created = []
    rows = (
        await session.scalars(
            select(Jurisdiction).where(Jurisdiction.public_jwk.is_(None)).with_for_update()
        )
    ).all()
    for row in rows:
        private_file = keys_dir / f"{row.code}.private.jwk.json"
        if private_file.exists():
            pair_private = json.loads(private_file.read_text())
            public = sealing.public_from_private(pair_private)
        else:
            pair = sealing.generate_keypair()
            write_private(private_file, json.dumps(pair.private_jwk))
            public = pair.public_jwk
        row.public_jwk = sealing.validate_public_jwk(public)
        created.append(row.code)
    return created
