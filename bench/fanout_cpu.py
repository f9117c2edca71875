"""`python -m bench.fanout_cpu`: the router's CPU per delivery, in process, by batch size.

On a shared machine the stack bench's rates move with everyone else's load; the CPU this process
spends per delivery moves much less. This drives `fanout.process_responses` directly against an
embedded PostgreSQL and broker (no services, no HTTP): responses with five recipients each
(38 jurisdictions refused), fanned out in batches of each size, rounds alternating between the
sizes. It reports the median CPU per delivery of this process (the fan-out and its sealing; the
database's own CPU is not counted) and the wall time, and the CPU of one seal.

Tunables: FANOUT_CPU_RESPONSES (per round, default 96), FANOUT_CPU_ROUNDS (default 3),
FANOUT_CPU_SIZES (default 1,32).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from caseshare.stack.embedded import EmbeddedPostgres, EmbeddedTansu, free_port
from services.registry import migrate
from services.registry.cases import service as cases
from services.registry.cases.schemas import CaseCreate, SelectorIn
from services.registry.cases.selectors import SelectorKind
from services.registry.context import Actor, Context
from services.registry.reference import seed
from services.registry.responses import service as responses
from services.registry.responses.rules import HandlingCode
from services.registry.responses.schemas import (
    Disclosure,
    DisclosureRecord,
    ResponseCreate,
    ResponseScopeIn,
)
from services.router import fanout, publish
from shared import evidence, sealing
from shared.db import create_engine, create_sessionmaker, transaction
from shared.kafka import TopicProvisioner, make_producer

RESPONSES = int(os.environ.get("FANOUT_CPU_RESPONSES", "96"))
ROUNDS = int(os.environ.get("FANOUT_CPU_ROUNDS", "3"))
SIZES = [int(x) for x in os.environ.get("FANOUT_CPU_SIZES", "1,32").split(",") if x]
RECIPIENTS = ("FR", "DE", "BE", "NL", "IT")
POLICY = publish.Policy(timedelta(minutes=5), timedelta(hours=1))
CTX = Context(hmac_key=secrets.token_bytes(32), topic_prefix="fanoutcpu")


def _selector() -> SelectorIn:
    return SelectorIn(kind=SelectorKind.GROUP_ID, value="group-" + secrets.token_hex(8))


async def _responses(sm: async_sessionmaker[AsyncSession], n: int) -> list[uuid.UUID]:
    """Five open cases on one fresh selector, and `n` responses about it."""
    sel = _selector()
    ids = []
    async with transaction(sm) as s:
        for code in RECIPIENTS:
            data = CaseCreate(
                reference="REF-" + secrets.token_hex(6).upper(),
                platform="telegram",
                legal_basis="Art. 18 Budapest Convention production order",
                offence_categories=["fraud"],
                selectors=[sel],
            )
            actor = Actor(client_id=f"authority-{code.lower()}", jurisdiction=code)
            await cases.register(s, actor=actor, data=data, ctx=CTX)
        for _ in range(n):
            body = ResponseCreate(
                scope=ResponseScopeIn(case_ids=[], selectors=[sel]),
                handling_code=HandlingCode.H0,
                requesting_case_id=None,
                disclosures=[
                    Disclosure(
                        selector=sel,
                        category="subscriber",
                        records=[DisclosureRecord(type="ip_address", value="203.0.113.7")],
                    )
                ],
                issued_at=datetime.now(UTC),
            )
            accepted = await responses.submit(
                s, platform="telegram", client_id="platform-telegram", data=body, ctx=CTX
            )
            ids.append(accepted.id)
    return ids


async def _round(
    sm: async_sessionmaker[AsyncSession],
    kafka: tuple[AIOKafkaProducer, TopicProvisioner],
    size: int,
) -> tuple[float, float]:
    """(CPU ms per delivery, wall ms per delivery) of fanning out RESPONSES in batches of `size`."""
    ids = await _responses(sm, RESPONSES)
    producer, provisioner = kafka
    cpu, wall = time.process_time(), time.perf_counter()
    for first in range(0, len(ids), size):
        await fanout.process_responses(
            sm,
            producer,
            provisioner,
            response_ids=ids[first : first + size],
            prefix=CTX.topic_prefix,
            policy=POLICY,
        )
    deliveries = len(ids) * len(RECIPIENTS)
    return (
        (time.process_time() - cpu) * 1000 / deliveries,
        (time.perf_counter() - wall) * 1000 / deliveries,
    )


def _seal_cpu(n: int = 2000) -> float:
    """CPU microseconds of one signed seal for an already imported recipient key."""
    pair, signer = sealing.generate_keypair(), evidence.generate_signer()
    claims = {"iss": "caseshare", "delivery_id": str(uuid.uuid4()), "disclosures": [{"a": 1}]}
    sealing.seal_signed(claims, pair.public_jwk, signer)
    started = time.process_time()
    for _ in range(n):
        sealing.seal_signed(claims, pair.public_jwk, signer)
    return (time.process_time() - started) * 1e6 / n


async def _measure(url: str, bootstrap: str, keys: Path) -> None:
    engine = create_engine(url, pool_size=5)
    sm = create_sessionmaker(engine)
    async with transaction(sm) as session:
        await seed.load(session)
        await seed.ensure_demo_keys(session, keys)
    producer = make_producer(bootstrap, client_id="fanout-cpu", linger_ms=0)
    provisioner = TopicProvisioner(bootstrap, partitions=6)
    await producer.start()
    await provisioner.start()
    try:
        kafka = (producer, provisioner)
        await _round(sm, kafka, 8)  # warm-up: topics, pools, caches
        results: dict[int, list[tuple[float, float]]] = {size: [] for size in SIZES}
        for i in range(ROUNDS):
            for size in SIZES[i % len(SIZES) :] + SIZES[: i % len(SIZES)]:
                results[size].append(await _round(sm, kafka, size))
        load = os.getloadavg()[0]
        for size, rounds in results.items():
            cpu = statistics.median(r[0] for r in rounds)
            wall = statistics.median(r[1] for r in rounds)
            print(
                f"batch {size:>3}: {cpu:.2f} ms CPU and {wall:.2f} ms wall per delivery"
                f" (rounds: {', '.join(f'{r[0]:.2f}' for r in rounds)})"
            )
        print(f"one signed seal: {_seal_cpu():.0f} us CPU; load average {load:.2f}")
    finally:
        await producer.stop()
        await provisioner.close()
        await engine.dispose()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="fanout-cpu-") as tmp:
        pg = EmbeddedPostgres(Path(tmp) / "pg", free_port())
        broker = EmbeddedTansu(free_port(), log_path=Path(tmp) / "tansu.log")
        pg.start()
        broker.start()
        try:
            migrate.upgrade(pg.url)
            asyncio.run(_measure(pg.url, broker.bootstrap, Path(tmp) / "keys"))
        finally:
            broker.stop()
            pg.stop()


if __name__ == "__main__":
    main()
