"""The scale curve: how intake, the router and the read models behave as the registry grows.

Cases are seeded straight into PostgreSQL (not through the API, which would take hours at a
million): each batch is one `INSERT ... SELECT FROM generate_series` of cases and, in the same
statement, one hashed selector per case, so nothing crosses the socket but the statement.
They spread over every jurisdiction and platform of the reference data (43 and 3), 4 in 5
open, the rest suspended or closed, like a registry that has been in use for a while. Each
size adds to the previous one (10^4, then 9 x 10^4 more, ...), and the tables are analysed
before measuring.

Before measuring at each size the bench waits (up to 90 s) until the services and PostgreSQL
are idle: the seeding's checkpoint, autovacuum, the audit sequencer and a router backlog left
by an earlier phase would otherwise be measured as the registry's size.

At each size, in `runs` rounds: intake latency at low load (wrk, 2 connections: a latency, not
a queue), router CPU per delivery over a fan-out of `responses` responses, the case-map query
and the inbox query (in process, through the registry's own service functions), and the peak
RSS of every service.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import create_async_engine

from bench import intake, memory, router, stats
from bench.stack import Target
from services.registry.deliveries import service as inbox
from services.registry.oversight import service as oversight
from shared.db import create_sessionmaker, transaction

SEED_CLIENT = "bench-seed"
BATCH = 100_000
LATENCY_CONNECTIONS = 2
LATENCY_SECONDS = 4
QUERY_REPEATS = 5

# One statement per batch: cases and their selectors together, no rows sent by the client.
SEED_SQL = """
WITH j AS (SELECT array_agg(code ORDER BY code) AS codes FROM jurisdictions),
     p AS (SELECT array_agg(slug ORDER BY slug) AS slugs FROM platforms),
     made AS (
       INSERT INTO cases (id, reference, opened_by, platform, offence_categories, legal_basis,
                          status, created_by_client)
       SELECT gen_random_uuid(), 'SEED-' || n,
              j.codes[1 + n % cardinality(j.codes)],
              p.slugs[1 + (n / cardinality(j.codes)) % cardinality(p.slugs)],
              ARRAY['fraud'], 'Art. 18 CoE Convention',
              CASE WHEN n % 10 = 8 THEN 'suspended' WHEN n % 10 = 9 THEN 'closed'
                   ELSE 'open' END,
              $3
       FROM generate_series($1::bigint, $2::bigint - 1) AS n, j, p
       RETURNING id
     )
INSERT INTO case_selectors (case_id, kind, value_hash, masked)
SELECT id, 'account_handle', encode(sha256(uuid_send(id)), 'hex'), '@s***' FROM made
"""


def _dsn(target: Target) -> str:
    return target.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def seed_to(target: Target, total: int) -> dict[str, float]:
    """Add seeded cases until there are `total`; returns how many were added and how long."""
    conn = await asyncpg.connect(_dsn(target))
    try:
        have = int(
            await conn.fetchval(
                "SELECT count(*) FROM cases WHERE created_by_client = $1", SEED_CLIENT
            )
        )
        started = time.perf_counter()
        for first in range(have, total, BATCH):
            await conn.execute(SEED_SQL, first, min(first + BATCH, total), SEED_CLIENT)
        await conn.execute("ANALYZE cases")
        await conn.execute("ANALYZE case_selectors")
        return {"added": total - have, "seconds": round(time.perf_counter() - started, 1)}
    finally:
        await conn.close()


async def _median_ms(call: Callable[[], Awaitable[Any]], repeats: int) -> float:
    await call()  # warm: plan cache, buffers
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return stats.median(times)


async def queries(target: Target) -> dict[str, float]:
    """The coordinator's case map (every case, grouped) and one authority's first inbox page."""
    engine = create_async_engine(target.database_url, pool_size=1)
    sm = create_sessionmaker(engine)

    async def case_map() -> None:
        async with transaction(sm) as session:
            await oversight.case_map(session)

    async def first_page() -> None:
        async with transaction(sm) as session:
            await inbox.list_for(
                session, jurisdiction="AT", limit=50, cursor=None, unacknowledged=False
            )

    try:
        return {
            "case_map_ms": await _median_ms(case_map, QUERY_REPEATS),
            "inbox_ms": await _median_ms(first_page, QUERY_REPEATS * 4),
        }
    finally:
        await engine.dispose()


def quiesce(target: Target, *, idle_cores: float = 0.15, longest: float = 90.0) -> float:
    """Wait until the services and PostgreSQL together use under `idle_cores` of CPU over a
    second; returns the seconds waited."""
    watched = target.service_pids(extra=("pg",))
    began = time.monotonic()
    while time.monotonic() - began < longest:
        with memory.Sampler(watched) as busy:
            time.sleep(1.0)
        if sum(busy.cpu_seconds.values()) < idle_cores:
            break
    return round(time.monotonic() - began, 1)


def measure(
    target: Target, pids: dict[str, int], tokens: list[str], *, size: int, runs: int, responses: int
) -> dict[str, Any]:
    """Every scale figure at the registry's current size, `runs` rounds each."""
    waited = quiesce(target)
    rounds: list[dict[str, float]] = []
    with memory.Sampler(pids) as everything:
        for i in range(runs):
            wrk = intake.run_wrk(
                target.url("intake"),
                tokens=tokens,
                run_id=f"s{size}x{i}x{int(time.time()) % 10**6}",
                connections=LATENCY_CONNECTIONS,
                seconds=LATENCY_SECONDS,
            )
            with memory.Sampler({"router": pids["router"]}) as routed:
                fanned = asyncio.run(router.fan_out(target, responses=responses))
            found = asyncio.run(queries(target))
            rounds.append(
                {
                    "intake_p50_ms": wrk.p50_ms,
                    "intake_p99_ms": wrk.p99_ms,
                    "intake_rps": wrk.rps,
                    "router_cpu_ms_per_delivery": 1000
                    * routed.cpu_seconds["router"]
                    / max(fanned.deliveries, 1),
                    "router_deliveries_per_s": fanned.rate,
                    **found,
                }
            )
    return {"size": size, "rounds": rounds, "peak_mib": everything.peak_mib, "quiesced_s": waited}


def growth(points: list[dict[str, Any]], key: str) -> stats.Summary:
    """Per round: the figure at the largest size over the figure at the smallest."""
    first, last = points[0]["rounds"], points[-1]["rounds"]
    return stats.ratio([r[key] for r in last], [r[key] for r in first])
