"""Tools for the router's failure tests: a fresh database, router processes to kill, a
scenario with known recipients, and the checks that nothing was lost, duplicated or leaked."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from caseshare.stack.embedded import free_port
from services.registry.cases import service as cases
from services.registry.context import Actor, Context
from services.registry.deliveries.models import Delivery
from services.registry.reference import seed
from services.registry.responses import service as responses
from services.registry.responses.models import CooperationResponse
from shared.db import create_engine, create_sessionmaker, transaction
from shared.events import ResponseDelivered, topic_name
from shared.kafka import decode
from tests import factories
from tests.conftest import HMAC_KEY
from tests.kafka_utils import read_topic

MEMBERS = ("FR", "DE", "BE", "NL", "IT", "ES", "AT", "PL")


async def prepare(url: str, keys_dir: Path) -> async_sessionmaker[AsyncSession]:
    engine = create_engine(url, pool_size=5)
    sm = create_sessionmaker(engine)
    async with transaction(sm) as session:
        await seed.load(session)
        await seed.ensure_demo_keys(session, keys_dir)
    return sm


@dataclass
class Scenario:
    """Groups of jurisdictions sharing a selector; each response targets one group."""

    prefix: str
    expected: dict[uuid.UUID, set[str]] = field(default_factory=dict)

    @property
    def ctx(self) -> Context:
        return Context(hmac_key=HMAC_KEY.encode(), topic_prefix=self.prefix)


async def build(
    sm: async_sessionmaker[AsyncSession],
    *,
    prefix: str,
    groups: int,
    responses_count: int,
    seed_value: int = 7,
) -> Scenario:
    """Register cases (1 to 4 jurisdictions per selector) and submit the responses."""
    rng = random.Random(seed_value)
    scenario = Scenario(prefix)
    selectors = []
    async with transaction(sm) as session:
        for _ in range(groups):
            sel = factories.selector()
            members = set(rng.sample(MEMBERS, rng.randint(1, 4)))
            for code in sorted(members):
                await cases.register(
                    session,
                    actor=Actor(f"authority-{code.lower()}", code),
                    data=factories.case(selectors=[sel]),
                    ctx=scenario.ctx,
                )
            selectors.append((sel, members))
    batch = 100
    for start in range(0, responses_count, batch):
        async with transaction(sm) as session:
            for i in range(start, min(start + batch, responses_count)):
                sel, members = selectors[i % groups]
                accepted = await responses.submit(
                    session,
                    platform="telegram",
                    client_id="platform-telegram",
                    ctx=scenario.ctx,
                    data=factories.response(selectors=[sel]),
                )
                scenario.expected[accepted.id] = set(members)
    return scenario


class RouterProcess:
    """`python -m services.router` as a child process, to be killed and restarted."""

    def __init__(
        self, *, database_url: str, bootstrap: str, prefix: str, log: Path, **extra_env: str
    ) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "KAFKA_TOPIC_PREFIX": prefix,
            "ROUTER_PORT": str(self.port),
            "ROUTER_GROUP_ID": f"router-{prefix}",
            "ROUTER_SESSION_TIMEOUT_MS": "6000",
            "ROUTER_REDRIVE_AFTER_SECONDS": "10",
            "ROUTER_RECONCILE_INTERVAL_SECONDS": "0.5",
            "ROUTER_ACK_TIMEOUT_SECONDS": "3600",
            "KAFKA_PARTITIONS": "3",
            "LOG_LEVEL": "WARNING",
            **extra_env,
        }
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "services.router"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(20)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


async def wait_until(predicate, *, within: float, every: float = 0.5) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(every)
    raise TimeoutError(f"condition not met within {within}s")


async def completed(sm: async_sessionmaker[AsyncSession], ids: set[uuid.UUID]) -> int:
    async with transaction(sm) as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(CooperationResponse)
                .where(
                    CooperationResponse.id.in_(ids), CooperationResponse.fanout_state == "completed"
                )
            )
            or 0
        )


async def all_completed(sm: async_sessionmaker[AsyncSession], scenario: Scenario) -> bool:
    return await completed(sm, set(scenario.expected)) == len(scenario.expected)


async def verify(sm: async_sessionmaker[AsyncSession], scenario: Scenario, bootstrap: str) -> None:
    """Every expected pair on the right inbox at least once with one id; nothing else;
    the registry shows every delivery published."""
    async with transaction(sm) as session:
        rows = (
            await session.execute(
                select(
                    Delivery.response_id, Delivery.jurisdiction, Delivery.id, Delivery.state
                ).where(Delivery.response_id.in_(set(scenario.expected)))
            )
        ).all()
    recorded: dict[uuid.UUID, set[str]] = defaultdict(set)
    for response_id, code, _, state in rows:
        assert state == "published", (response_id, code, state)
        recorded[response_id].add(code)
    assert dict(recorded) == scenario.expected
    seen: dict[tuple[uuid.UUID, str], set[str]] = defaultdict(set)
    codes = sorted({c for cs in scenario.expected.values() for c in cs} | set(MEMBERS))
    # Each read waits for its topic to settle; reading them side by side waits once.
    topics = await asyncio.gather(
        *(
            read_topic(bootstrap, topic_name(scenario.prefix, "inbox", code), settle=1.0, within=60)
            for code in codes
        )
    )
    for code, records in zip(codes, topics, strict=True):
        for record in records:
            envelope = decode(record.value, record.headers)
            event = envelope.event
            if not isinstance(event, ResponseDelivered):
                continue
            if event.response_id in scenario.expected:
                assert event.jurisdiction == code
                seen[(event.response_id, code)].add(envelope.ce_id)
    expected_pairs = {(r, c) for r, cs in scenario.expected.items() for c in cs}
    assert set(seen) == expected_pairs, (
        f"missing {len(expected_pairs - set(seen))}, unexpected {len(set(seen) - expected_pairs)}"
    )
    assert all(len(ids) == 1 for ids in seen.values())


async def verify_eventually(
    sm: async_sessionmaker[AsyncSession], scenario: Scenario, bootstrap: str, *, within: float
) -> None:
    """`verify`, retried while the reconciler may still be healing, then once for real."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            await verify(sm, scenario, bootstrap)
            return
        except AssertionError:
            await asyncio.sleep(2)
    await verify(sm, scenario, bootstrap)
