"""Kafka over mutual TLS: the hub's clients speak it, and a client without a certificate is out.

The embedded broker cannot terminate TLS itself (BROKER.md), so stunnel does, in front of a
Tansu of this module's own that advertises the TLS port: every connection a client opens, to
bootstrap or to the partition leader, goes through the terminator, which demands a client
certificate signed by the test CA. The clients are the project's own factories, configured
only through `KafkaSettings`, as in production.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from caseshare.stack.embedded import EmbeddedPostgres, free_port, tansu_binary, wait_for_port
from services.registry.cases import service as cases
from services.registry.context import Actor, Context
from services.registry.reference import seed
from services.registry.responses import service as responses
from services.router.app import Runtime
from services.router.relay import OutboxRelay
from services.router.settings import RouterSettings
from shared.db import create_sessionmaker, transaction
from shared.events import topic_name
from shared.kafka import TopicProvisioner, decode, make_consumer, make_producer
from shared.settings import KafkaSettings
from tests import databases, factories
from tests.tls_certs import Issued, TestCA

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class TlsBroker:
    bootstrap: str
    ca: Path
    client: Issued

    def settings(self, **env: Any) -> KafkaSettings:
        """Mutual TLS with the client certificate, unless `env` says otherwise."""
        base = {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA_SECURITY_PROTOCOL": "SSL",
            "KAFKA_SSL_CAFILE": self.ca,
            "KAFKA_SSL_CERTFILE": self.client.cert,
            "KAFKA_SSL_KEYFILE": self.client.key,
        }
        return KafkaSettings(**{k: v for k, v in (base | env).items() if v is not None})


def stunnel_binary() -> str:
    found = shutil.which("stunnel4") or shutil.which("stunnel")
    if found is None:
        pytest.fail("stunnel4 is not installed: run `python -m tests.system_deps`")
    return found


def spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    """Tansu on a loopback port nobody is told about, stunnel on the port it advertises."""
    work = tmp_path_factory.mktemp("kafka-tls")
    ca = TestCA.create(work / "pki")
    server = ca.issue("broker", server=True)
    plain, tls = free_port(), free_port()
    config = work / "stunnel.conf"
    config.write_text(
        "foreground = yes\n"
        f"output = {work / 'stunnel.log'}\n"
        "debug = 5\n"
        "[kafka]\n"
        f"accept = 127.0.0.1:{tls}\n"
        f"connect = 127.0.0.1:{plain}\n"
        f"cert = {server.cert}\nkey = {server.key}\nCAfile = {ca.cert}\n"
        # verify = 2: a client certificate is required and must chain to CAfile.
        "verifyChain = yes\nrequireCert = yes\n"
    )
    broker = spawn(
        [
            tansu_binary(),
            "broker",
            "--listener-url",
            f"tcp://127.0.0.1:{plain}",
            "--advertised-listener-url",
            f"tcp://127.0.0.1:{tls}",
            "--storage-engine",
            "memory://tansu/",
        ],
        work / "tansu.log",
    )
    terminator = spawn([stunnel_binary(), str(config)], work / "stunnel.out")
    try:
        wait_for_port("127.0.0.1", plain, timeout=30, proc=broker)
        wait_for_port("127.0.0.1", tls, timeout=30, proc=terminator)
        yield TlsBroker(f"127.0.0.1:{tls}", ca.cert, ca.issue("router", server=False))
    finally:
        stop(terminator)
        stop(broker)


@pytest.fixture
async def provisioner(tls_broker: TlsBroker) -> AsyncIterator[TopicProvisioner]:
    topics = TopicProvisioner(tls_broker.settings(), partitions=2)
    await topics.start()
    yield topics
    await topics.close()


async def test_a_record_round_trips_over_mutual_tls(
    tls_broker: TlsBroker, provisioner: TopicProvisioner
) -> None:
    topic = f"tls{uuid.uuid4().hex[:8]}.responses.v1"
    assert await provisioner.ensure([topic]) == {topic}
    producer = make_producer(tls_broker.settings(), client_id="tls-test")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"sealed", key=b"case-1", headers=[("ce_id", b"1")])
    finally:
        await producer.stop()
    records = await read_all(tls_broker.settings(), topic, count=1)
    assert [(r.key, r.value, r.headers) for r in records] == [
        (b"case-1", b"sealed", (("ce_id", b"1"),))
    ]


async def test_the_router_relay_publishes_over_mutual_tls(
    tls_broker: TlsBroker,
    provisioner: TopicProvisioner,
    sessionmaker: async_sessionmaker[AsyncSession],
    ctx: Context,
) -> None:
    async with transaction(sessionmaker) as session:
        case = await cases.register(
            session,
            actor=Actor(client_id="authority-fr", jurisdiction="FR"),
            data=factories.case(),
            ctx=ctx,
        )
    topic = topic_name(ctx.topic_prefix, "cases")
    producer = make_producer(tls_broker.settings(), client_id="caseshare-router")
    await producer.start()
    try:
        relay = OutboxRelay(sessionmaker, producer, provisioner, database_url="unused", batch=500)
        # every unpublished event in the shared database goes out, ours among them
        while await relay.publish_batch():
            pass
    finally:
        await producer.stop()
    records = await read_all(tls_broker.settings(), topic, count=1)
    envelope = decode(records[0].value, records[0].headers)
    assert envelope.ce_type == "eu.caseshare.case.registered.v1"
    assert envelope.ce_subject == str(case.id)


async def test_the_whole_router_fans_out_over_mutual_tls(
    tls_broker: TlsBroker, postgres: EmbeddedPostgres, ctx: Context, tmp_path: Path
) -> None:
    """The router process as deployed (relay, consumer, fan-out, reconciler), configured only by
    its settings, on a database of its own: a response goes in, FR's delivery comes out."""
    url = await databases.migrated(postgres)
    async with databases.engine_for(url) as engine:
        sm = create_sessionmaker(engine)
        async with transaction(sm) as session:
            await seed.ensure_demo_keys(session, tmp_path / "keys")
            group = factories.selector()
            fr = await cases.register(
                session,
                actor=Actor(client_id="authority-fr", jurisdiction="FR"),
                data=factories.case(selectors=[group]),
                ctx=ctx,
            )
            accepted = await responses.submit(
                session,
                platform="telegram",
                client_id="platform-telegram",
                ctx=ctx,
                data=factories.response(case_ids=[fr.id], selectors=[group]),
            )
    env = {k: str(v) for k, v in tls_broker.settings().model_dump(by_alias=True).items() if v}
    settings = RouterSettings(
        **env
        | {
            "DATABASE_URL": url,
            "KAFKA_TOPIC_PREFIX": ctx.topic_prefix,
            "KAFKA_PARTITIONS": 2,
            "ROUTER_GROUP_ID": f"router-{ctx.topic_prefix}",
        }
    )
    runtime = Runtime(settings)
    await runtime.start()
    try:
        inbox = topic_name(ctx.topic_prefix, "inbox", "FR")
        records = await read_all(tls_broker.settings(), inbox, count=1)
    finally:
        await runtime.close()
    delivered = decode(records[0].value, records[0].headers)
    assert delivered.ce_type == "eu.caseshare.response.delivered.v1"
    assert delivered.event.response_id == accepted.id  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "without",
    [
        pytest.param({"KAFKA_SSL_CERTFILE": None, "KAFKA_SSL_KEYFILE": None}, id="no-client-cert"),
        pytest.param({"KAFKA_SECURITY_PROTOCOL": "PLAINTEXT", "KAFKA_SSL_CAFILE": None,
                      "KAFKA_SSL_CERTFILE": None, "KAFKA_SSL_KEYFILE": None}, id="plaintext"),
    ],
)  # fmt: skip
async def test_a_client_without_a_certificate_cannot_connect(
    tls_broker: TlsBroker, without: dict[str, Any]
) -> None:
    producer = make_producer(tls_broker.settings(**without), client_id="intruder")
    with pytest.raises(KafkaConnectionError):
        await asyncio.wait_for(producer.start(), 30)
    await producer.stop()


async def test_a_certificate_from_another_ca_is_refused(
    tls_broker: TlsBroker, tmp_path: Path
) -> None:
    stranger = TestCA.create(tmp_path, name="not our CA").issue("router", server=False)
    settings = tls_broker.settings(KAFKA_SSL_CERTFILE=stranger.cert, KAFKA_SSL_KEYFILE=stranger.key)
    producer = make_producer(settings, client_id="stranger")
    with pytest.raises(KafkaConnectionError):
        await asyncio.wait_for(producer.start(), 30)
    await producer.stop()


async def read_all(kafka: KafkaSettings, topic: str, *, count: int) -> list[Any]:
    """At least `count` records of `topic` through a consumer group of the project's factory."""
    consumer = make_consumer(kafka, topic, group_id=f"tls-{uuid.uuid4().hex}", client_id="tls")
    await consumer.start()
    records: list[Any] = []
    try:
        async with asyncio.timeout(30):
            while len(records) < count:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(batch)
    finally:
        await consumer.stop()
    return records
