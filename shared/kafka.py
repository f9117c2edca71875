"""Kafka plumbing: producers and consumers configured for both Tansu and Apache Kafka,
CloudEvents binary-mode envelopes, and topic provisioning that verifies what it created.

Tansu acknowledges a produce to a topic that does not exist and then drops it (BROKER.md), so
nothing here produces to a topic that `TopicProvisioner` has not seen exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared import tracing
from shared.events import EVENT_TYPES, Event
from shared.kafka_security import KafkaTarget, client_kwargs

logger = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 8 * 1024 * 1024
CE_SOURCE = "/caseshare"


class PoisonMessage(Exception):
    """A record that can never be processed (unparseable, unknown type or version)."""


def make_producer(kafka: KafkaTarget, *, client_id: str, linger_ms: int = 5) -> AIOKafkaProducer:
    """acks=all, no idempotence (Tansu refuses InitProducerId v0); exactly-once is by ce_id.

    `kafka` is the settings (with their TLS/SASL) or a bare bootstrap for the embedded broker."""
    return AIOKafkaProducer(
        **client_kwargs(kafka),
        client_id=client_id,
        acks="all",
        enable_idempotence=False,
        linger_ms=linger_ms,
        max_request_size=MAX_MESSAGE_BYTES,
        request_timeout_ms=15000,
        retry_backoff_ms=200,
    )


def make_consumer(
    kafka: KafkaTarget,
    *topics: str,
    group_id: str,
    client_id: str,
    fetch_max_wait_ms: int = 25,
    session_timeout_ms: int = 10000,
) -> AIOKafkaConsumer:
    """Manual commits after processing; "earliest" because "latest" is wrong on Tansu."""
    return AIOKafkaConsumer(
        *topics,
        **client_kwargs(kafka),
        group_id=group_id,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=fetch_max_wait_ms,
        max_partition_fetch_bytes=MAX_MESSAGE_BYTES,
        fetch_max_bytes=4 * MAX_MESSAGE_BYTES,
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=1000,
        max_poll_interval_ms=120000,
    )


@dataclass(frozen=True)
class Envelope:
    """A decoded CloudEvents binary-mode record."""

    event: Event
    ce_id: str
    ce_type: str
    ce_subject: str | None
    ce_time: str
    headers: dict[str, str]


def now() -> datetime:
    return datetime.now(UTC)


def encode(
    event: Event, *, ce_id: uuid.UUID | str, subject: str | None, source: str = CE_SOURCE
) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The record value and CloudEvents headers for an event (binary content mode)."""
    return encode_payload(
        event.model_dump(mode="json"),
        event_type=type(event),
        ce_id=ce_id,
        subject=subject,
        source=source,
    )


def encode_payload(
    payload: dict[str, Any],
    *,
    event_type: type[Event],
    ce_id: uuid.UUID | str,
    subject: str | None,
    source: str = CE_SOURCE,
) -> tuple[bytes, list[tuple[str, bytes]]]:
    """Like `encode`, for a payload already validated against `event_type` when it was stored
    (the outbox keeps `model_dump(mode="json")`), so publishing does not parse it again."""
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", str(ce_id).encode()),
        ("ce_type", event_type.TYPE.encode()),
        ("ce_source", source.encode()),
        ("ce_time", now().isoformat().replace("+00:00", "Z").encode()),
        ("ce_schemaversion", str(event_type.SCHEMA_VERSION).encode()),
        ("content-type", b"application/json"),
    ]
    if not tracing.active():
        # With tracing on, the aiokafka instrumentation injects the producer span's context.
        headers.append(("traceparent", new_traceparent().encode()))
    if subject is not None:
        headers.append(("ce_subject", subject.encode()))
    return orjson.dumps(payload), headers


def new_traceparent() -> str:
    """A W3C trace context for a new trace (we start traces at the hub)."""
    return f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"


def decode(value: bytes | None, headers: Any) -> Envelope:
    """Parse a record into its event model; anything unusable is a PoisonMessage."""
    hdrs = {k: (v.decode(errors="replace") if v is not None else "") for k, v in headers or ()}
    ce_type = hdrs.get("ce_type")
    model = EVENT_TYPES.get(ce_type or "")
    if model is None:
        raise PoisonMessage(f"unknown ce_type {ce_type!r}")
    if hdrs.get("ce_schemaversion", "1") != str(model.SCHEMA_VERSION):
        raise PoisonMessage(f"unsupported schema version {hdrs.get('ce_schemaversion')!r}")
    if value is None:
        raise PoisonMessage("empty record value")
    try:
        event = model.model_validate_json(value)
    except ValueError as exc:
        raise PoisonMessage(f"invalid {ce_type} payload: {exc.__class__.__name__}") from exc
    return Envelope(
        event=event,
        ce_id=hdrs.get("ce_id", ""),
        ce_type=ce_type or "",
        ce_subject=hdrs.get("ce_subject"),
        ce_time=hdrs.get("ce_time", ""),
        headers=hdrs,
    )


class TopicProvisioner:
    """Creates topics and remembers, for a short while, which ones the broker has.

    `missing()` asks the broker again once the memory is stale, so a broker that came back
    empty is noticed and re-provisioned before anything is produced to it.
    """

    def __init__(
        self,
        kafka: KafkaTarget,
        *,
        partitions: int,
        ttl_seconds: float = 2.0,
        replication_factor: int = 1,
    ) -> None:
        self._admin = AIOKafkaAdminClient(**client_kwargs(kafka), request_timeout_ms=10000)
        self._partitions, self._replication = partitions, replication_factor
        self._ttl = ttl_seconds
        self._known: set[str] = set()
        self._checked_at = 0.0
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        await self._admin.start()

    async def close(self) -> None:
        await self._admin.close()

    async def existing(self, *, fresh: bool = False) -> set[str]:
        """Topic names the broker reports, cached for `ttl_seconds`."""
        async with self._lock:
            if fresh or time.monotonic() - self._checked_at > self._ttl:
                self._known = set(await self._admin.list_topics())
                self._checked_at = time.monotonic()
            return set(self._known)

    async def ensure(self, names: set[str] | list[str]) -> set[str]:
        """Make every named topic exist; returns the ones that had to be created."""
        wanted = set(names)
        missing = wanted - await self.existing()
        if missing:
            missing &= wanted - await self.existing(fresh=True)
        if not missing:
            return set()
        new = [
            NewTopic(n, num_partitions=self._partitions, replication_factor=self._replication)
            for n in missing
        ]
        with contextlib.suppress(TopicAlreadyExistsError):
            await self._admin.create_topics(new)
        await self._wait_visible(missing)
        logger.info("created topics", extra={"topics": sorted(missing)})
        return missing

    async def _wait_visible(self, names: set[str]) -> None:
        for _ in range(100):
            if names <= await self.existing(fresh=True):
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"topics not visible after creation: {sorted(names)}")
