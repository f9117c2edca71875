"""The requests the router and end-to-end figures send: five authorities open cases that share
a selector, then a platform answers about that selector, so each response has five recipients.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import DateTime, bindparam, text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.stack import Target

PLATFORM = "telegram"
RECIPIENTS = ("AT", "BE", "DE", "EE", "ES")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def response_body(handle: str) -> dict[str, Any]:
    return {
        "scope": {"selectors": [{"kind": "account_handle", "value": handle}]},
        "handling_code": "H0",
        "issued_at": "2026-11-29T10:00:00Z",
        "disclosures": [
            {
                "selector": {"kind": "account_handle", "value": handle},
                "category": "subscriber",
                "records": [
                    {"type": "ip_address", "value": "198.51.100.23"},
                    {"type": "phone_number", "value": "+33612345678"},
                ],
            }
        ],
    }


def case_body(reference: str, handle: str) -> dict[str, Any]:
    """An open case on the bench's platform about one account handle."""
    return {
        "reference": reference,
        "platform": PLATFORM,
        "legal_basis": "Art. 18 CoE Convention",
        "offence_categories": ["fraud"],
        "selectors": [{"kind": "account_handle", "value": handle}],
    }


async def seed_cases(http: httpx.AsyncClient, target: Target) -> str:
    """Five open cases, one per recipient, sharing a fresh handle; returns the handle."""
    handle = f"@bench_{uuid.uuid4().hex[:12]}"
    for code in RECIPIENTS:
        token = await asyncio.to_thread(target.token, f"authority-{code.lower()}")
        made = await http.post(
            "/v1/cases",
            headers=bearer(token),
            json=case_body(f"BENCH-{code}-{handle[7:]}", handle),
        )
        made.raise_for_status()
    return handle


async def submit(http: httpx.AsyncClient, token: str, handle: str) -> str:
    """POST one response; returns its id."""
    answer = await http.post("/v1/responses", headers=bearer(token), json=response_body(handle))
    answer.raise_for_status()
    response_id: str = answer.json()["id"]
    return response_id


async def published_window(
    target: Target, response_ids: list[str], *, expect: int, within: float
) -> tuple[int, float]:
    """Wait until `expect` deliveries of these responses are published; returns (count, seconds
    from the first response received to the last delivery published, by the database clock)."""
    count, seconds, _ = await published_and_received(
        target, response_ids, expect=expect, within=within
    )
    return count, seconds


async def database_now(target: Target) -> datetime:
    """The database clock, which the published and received times are written by."""
    engine = create_async_engine(target.database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            now: datetime = (await conn.execute(text("SELECT clock_timestamp()"))).scalar_one()
            return now
    finally:
        await engine.dispose()


async def published_and_received(
    target: Target,
    response_ids: list[str],
    *,
    expect: int,
    within: float,
    since: datetime | None = None,
) -> tuple[int, float, float]:
    """`published_window` (from `since` instead, when given), and the seconds from the first
    to the last response received: how fast intake accepted them, which bounds how fast any
    router can be seen to deliver them."""
    engine = create_async_engine(target.database_url, pool_size=1)
    ids = [uuid.UUID(r) for r in response_ids]
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        async with engine.connect() as conn:
            while True:
                row = (
                    await conn.execute(
                        text(
                            "SELECT count(*) FILTER (WHERE d.state <> 'pending'),"
                            " extract(epoch FROM max(d.published_at) - coalesce(:since,"
                            "  (SELECT min(received_at) FROM responses"
                            "   WHERE id = ANY(:ids)))),"
                            " (SELECT extract(epoch FROM max(received_at) - min(received_at))"
                            "  FROM responses WHERE id = ANY(:ids))"
                            " FROM deliveries d WHERE d.response_id = ANY(:ids)"
                        ).bindparams(bindparam("since", type_=DateTime(timezone=True))),
                        {"ids": ids, "since": since},
                    )
                ).one()
                await conn.commit()
                if row[0] >= expect or loop.time() > deadline:
                    return int(row[0]), float(row[1] or 0.0), float(row[2] or 0.0)
                await asyncio.sleep(0.1)
    finally:
        await engine.dispose()
