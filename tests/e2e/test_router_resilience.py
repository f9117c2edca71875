"""The router under failure: SIGKILL at random points, a broker that restarts empty,
PostgreSQL stopped for 10 s, two instances sharing the load, and poison records.

Each test runs real router processes against a fresh database and its own broker, then
checks from the inbox topics and the registry that every delivery with standing arrived,
exactly one delivery id per (response, jurisdiction), and that nothing else did.
"""

from __future__ import annotations

import asyncio
import random
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.embedded import EmbeddedPostgres, EmbeddedTansu, free_port
from tests import resilience
from tests.resilience import RouterProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[EmbeddedTansu]:
    server = EmbeddedTansu(free_port(), log_path=tmp_path / "tansu.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def fresh_db(postgres: EmbeddedPostgres, tmp_path: Path
                   ) -> AsyncIterator[tuple[str, async_sessionmaker[AsyncSession]]]:
    url = await asyncio.to_thread(resilience.fresh_database, postgres)
    sm = await resilience.prepare(url, tmp_path / "keys")
    yield url, sm
    await sm.kw["bind"].dispose()


def router(url: str, broker: EmbeddedTansu, prefix: str, tmp_path: Path, name: str = "router",
           **env: str) -> RouterProcess:
    return RouterProcess(database_url=url, bootstrap=broker.bootstrap, prefix=prefix,
                         log=tmp_path / f"{name}.log", **env)


async def test_sigkill_at_random_points_loses_and_duplicates_nothing(
    fresh_db: tuple[str, async_sessionmaker[AsyncSession]], own_broker: EmbeddedTansu,
    tmp_path: Path, topic_prefix: str,
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
                await resilience.wait_until(lambda: resilience.all_completed(sm, scenario),
                                            within=180)
        await resilience.verify(sm, scenario, own_broker.bootstrap)
    finally:
        proc.stop()
