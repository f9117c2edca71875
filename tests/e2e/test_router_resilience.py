"""The router under failure: SIGKILL at random points, a broker that restarts empty,
PostgreSQL stopped for 10 s, two instances sharing the load, and poison records.

Each test runs real router processes against a fresh database and its own broker, then
checks from the inbox topics and the registry that every delivery with standing arrived,
exactly one delivery id per (response, jurisdiction), and that nothing else did.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from caseshare.stack.embedded import EmbeddedPostgres, EmbeddedTansu, free_port
from shared.events import ResponseReceived, topic_name
from shared.kafka import make_producer
from tests import databases, resilience
from tests.kafka_utils import existing_topics, read_topic
from tests.resilience import RouterProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[EmbeddedTansu]:
    server = EmbeddedTansu(free_port(), log_path=tmp_path / "tansu.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def fresh_db(
    postgres: EmbeddedPostgres, tmp_path: Path
) -> AsyncIterator[tuple[str, async_sessionmaker[AsyncSession]]]:
    url = await databases.migrated(postgres)  # a template clone: a fraction of a migration
    sm = await resilience.prepare(url, tmp_path / "keys")
    yield url, sm
    await sm.kw["bind"].dispose()


def router(
    url: str, broker: EmbeddedTansu, prefix: str, tmp_path: Path, name: str = "router", **env: str
) -> RouterProcess:
    return RouterProcess(
        database_url=url,
        bootstrap=broker.bootstrap,
        prefix=prefix,
        log=tmp_path / f"{name}.log",
        **env,
    )


async def test_sigkill_at_random_points_loses_and_duplicates_nothing(
    fresh_db: tuple[str, async_sessionmaker[AsyncSession]],
    own_broker: EmbeddedTansu,
    tmp_path: Path,
    topic_prefix: str,
) -> None:
    url, sm = fresh_db
    scenario = await resilience.build(sm, prefix=topic_prefix, groups=25, responses_count=2000)
    proc = router(url, own_broker, topic_prefix, tmp_path)
    rng = random.Random(11)
    kills = 0
    proc.start()
    try:
        while kills < 3 or not await resilience.all_completed(sm, scenario):
            if kills < 3:
                await asyncio.sleep(rng.uniform(1.5, 4.0))
                proc.kill(signal.SIGKILL)
                kills += 1
                done = await resilience.completed(sm, set(scenario.expected))
                assert done < len(scenario.expected), "killed too late to prove anything"
                proc.start()
            else:
                await resilience.wait_until(
                    lambda: resilience.all_completed(sm, scenario), within=180
                )
        await resilience.verify(sm, scenario, own_broker.bootstrap)
    finally:
        proc.stop()


async def test_broker_restart_with_wiped_memory_is_healed(
    fresh_db: tuple[str, async_sessionmaker[AsyncSession]],
    own_broker: EmbeddedTansu,
    tmp_path: Path,
    topic_prefix: str,
) -> None:
    url, sm = fresh_db
    scenario = await resilience.build(sm, prefix=topic_prefix, groups=10, responses_count=150)
    proc = router(url, own_broker, topic_prefix, tmp_path)
    proc.start()
    try:
        await resilience.wait_until(lambda: _some_done(sm, scenario), within=60, every=0.1)
        own_broker.restart()  # memory storage: every topic, record and offset is gone
        await resilience.wait_until(lambda: resilience.all_completed(sm, scenario), within=120)
        # deliveries published before the wipe, or in flight during it, are re-published
        # onto the new topics; the reconciler heals twice, the second time 20 s after the wipe
        await resilience.verify_eventually(sm, scenario, own_broker.bootstrap, within=60)
    finally:
        proc.stop()


async def _some_done(
    sm: async_sessionmaker[AsyncSession],
    scenario: resilience.Scenario,
) -> bool:
    return await resilience.completed(sm, set(scenario.expected)) >= 30


async def test_postgres_down_for_ten_seconds_pauses_and_resumes(
    fresh_db: tuple[str, async_sessionmaker[AsyncSession]],
    own_broker: EmbeddedTansu,
    postgres: EmbeddedPostgres,
    tmp_path: Path,
    topic_prefix: str,
) -> None:
    url, sm = fresh_db
    scenario = await resilience.build(sm, prefix=topic_prefix, groups=10, responses_count=150)
    proc = router(url, own_broker, topic_prefix, tmp_path)
    proc.start()
    try:
        await resilience.wait_until(lambda: _some_done(sm, scenario), within=60, every=0.1)
        await sm.kw["bind"].dispose()
        await asyncio.to_thread(postgres.stop)
        await asyncio.sleep(10)
        assert proc.proc is not None
        assert proc.proc.poll() is None, "router died with the DB"
        await asyncio.to_thread(postgres.start)
        await resilience.wait_until(lambda: resilience.all_completed(sm, scenario), within=120)
        await resilience.verify(sm, scenario, own_broker.bootstrap)
    finally:
        proc.stop()


async def test_two_routers_share_the_load_and_a_rebalance_loses_nothing(
    fresh_db: tuple[str, async_sessionmaker[AsyncSession]],
    own_broker: EmbeddedTansu,
    tmp_path: Path,
    topic_prefix: str,
) -> None:
    url, sm = fresh_db
    scenario = await resilience.build(sm, prefix=topic_prefix, groups=10, responses_count=200)
    first = router(url, own_broker, topic_prefix, tmp_path, name="first")
    second = router(url, own_broker, topic_prefix, tmp_path, name="second")
    first.start()
    second.start()
    try:
        await resilience.wait_until(lambda: _some_done(sm, scenario), within=60, every=0.1)
        first.stop()  # graceful leave: the group rebalances onto the second instance
        await resilience.wait_until(lambda: resilience.all_completed(sm, scenario), within=120)
        await resilience.verify(sm, scenario, own_broker.bootstrap)
    finally:
        first.stop()
        second.stop()


async def test_sigterm_stops_the_router_within_ten_seconds(
    fresh_db: tuple[str, async_sessionmaker[AsyncSession]],
    own_broker: EmbeddedTansu,
    tmp_path: Path,
    topic_prefix: str,
) -> None:
    url, sm = fresh_db
    scenario = await resilience.build(sm, prefix=topic_prefix, groups=5, responses_count=120)
    proc = router(url, own_broker, topic_prefix, tmp_path, LOG_LEVEL="INFO", LOG_FORMAT="json")
    proc.start()
    await resilience.wait_until(lambda: _some_done(sm, scenario), within=60, every=0.1)
    assert proc.proc is not None
    started = asyncio.get_running_loop().time()
    proc.proc.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(proc.proc.wait, 15)
    assert asyncio.get_running_loop().time() - started < 10
    assert code in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after a clean stop
    stopped = [
        json.loads(line) for line in proc.log.read_text().splitlines() if '"router stopped"' in line
    ]
    assert stopped == [stopped[0]]
    assert stopped[0]["drained"] is True
    # whatever was in flight was committed or will be redone: a new instance finishes the rest
    proc.start()
    try:
        await resilience.wait_until(lambda: resilience.all_completed(sm, scenario), within=90)
        await resilience.verify(sm, scenario, own_broker.bootstrap)
    finally:
        proc.stop()


async def test_poison_records_go_to_the_dlq_and_do_not_block_the_partition(
    fresh_db: tuple[str, async_sessionmaker[AsyncSession]],
    own_broker: EmbeddedTansu,
    tmp_path: Path,
    topic_prefix: str,
) -> None:
    url, sm = fresh_db
    proc = router(url, own_broker, topic_prefix, tmp_path, KAFKA_PARTITIONS="1")
    proc.start()
    try:
        responses_topic = topic_name(topic_prefix, "responses")
        await resilience.wait_until(lambda: _topic_exists(own_broker, responses_topic), within=60)
        producer = make_producer(own_broker.bootstrap, client_id="poisoner")
        await producer.start()
        try:
            await producer.send_and_wait(
                responses_topic,
                b"\x00not json",
                key=b"k",
                headers=[("ce_type", b"eu.caseshare.nonsense.v1")],
            )
            await producer.send_and_wait(
                responses_topic,
                b"{}",
                key=b"k",
                headers=[("ce_type", ResponseReceived.TYPE.encode()), ("ce_schemaversion", b"9")],
            )
        finally:
            await producer.stop()
        # a real response behind the poison, on the same (single) partition
        scenario = await resilience.build(sm, prefix=topic_prefix, groups=1, responses_count=1)
        await resilience.wait_until(lambda: resilience.all_completed(sm, scenario), within=60)
        await resilience.verify(sm, scenario, own_broker.bootstrap)
        dead = await read_topic(own_broker.bootstrap, topic_name(topic_prefix, "dlq"), expect=2)
        assert len(dead) == 2
        for record in dead:
            headers = dict(record.headers)
            assert headers["dlq_error"] == b"PoisonMessage"
            assert headers["dlq_topic"] == responses_topic.encode()
            assert headers["dlq_reason"]
        assert {r.value for r in dead} == {b"\x00not json", b"{}"}
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"http://127.0.0.1:{proc.port}/metrics")).text
        values = dict(
            line.rsplit(" ", 1)
            for line in metrics.splitlines()
            if line.startswith("caseshare_router_") and "{" not in line
        )
        assert float(values["caseshare_router_dlq_total"]) == 2
        recipients = len(next(iter(scenario.expected.values())))
        assert float(values["caseshare_router_delivered_total"]) == recipients
        assert float(values["caseshare_router_excluded_total"]) > 0
        assert float(values["caseshare_router_consumed_total"]) >= 3
    finally:
        proc.stop()


async def _topic_exists(broker: EmbeddedTansu, name: str) -> bool:
    return name in await existing_topics(broker.bootstrap)
