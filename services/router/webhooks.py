"""The webhook dispatcher: POSTs each jurisdiction's inbox events to its approved endpoints.

What to send is queued by the outbox trigger (migration 0009) in the transaction of the event
itself, one message per active endpoint, so nothing committed is missed and nothing is queued
twice; the trigger then notifies `caseshare_webhooks` (migration 0017), so the dispatcher
wakes when there is something to send, not on every outbox event. One router leads (its own
advisory lock); it sends what is due, signed per Standard Webhooks with the endpoint's
secret, and records each outcome in the delivery log. The `webhook-id` is the event's stable
id — the delivery id for a delivery — so a receiver that dedupes by it sees each exactly
once, though a call whose answer was lost is made again.

Failed calls are retried with capped exponential backoff (`RetryPolicy`); an endpoint that
keeps failing is disabled, which the `caseshare_webhook_endpoints{state="disabled"}` gauge
alerts on. The clock is injected, so tests cross an outage without waiting it out.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks import Webhook

from services.registry.webhooks import repository
from services.registry.webhooks import service as webhooks
from services.registry.webhooks.rules import EndpointState, Outcome, RetryPolicy, is_success
from services.router.leader import run_as_leader
from services.router.publish import load_outgoing
from services.router.relay import asyncpg_dsn
from shared.db import transaction
from shared.events import DeliveryPublished, ResponseDelivered, json_datetime
from shared.keywrap import KeyRing, SealError

logger = logging.getLogger(__name__)

WEBHOOKS_LOCK_KEY = 0x0CA5E5A0E8B0
CHANNEL = "caseshare_webhooks"  # notified by the trigger that queues messages
USER_AGENT = "caseshare-webhooks/1"
CONCURRENCY = 8
GAUGE_EVERY_SECONDS = 5.0
PRUNE_EVERY_SECONDS = 3600.0
PRUNE_BATCH = 1000  # rows per DELETE: no pass holds many locks or a long transaction
PRUNE_MAX_BATCHES = 20  # the rest waits for the next pass, so sending is never held up
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class WebhookDispatcher:
    """Sends due webhook messages; `dispatch_once` is one pass, `run` loops as the leader."""

    def __init__(
        self,
        sm: async_sessionmaker[AsyncSession],
        *,
        ring: KeyRing | Callable[[], KeyRing],
        policy: RetryPolicy,
        prefix: str,
        database_url: str,
        batch: int = 100,
        timeout: float = 10.0,
        poll: float = 0.5,
        clock: Clock = utc_now,
        http: httpx.AsyncClient | None = None,
        on_states: Callable[[dict[str, int]], None] | None = None,
        log_retention: timedelta = timedelta(days=30),
    ) -> None:
        self._sm, self._policy, self._prefix = sm, policy, prefix
        # resolved on first use: a router with no endpoint to call needs no key ring
        self._ring: Callable[[], KeyRing] = (
            functools.cache(ring) if callable(ring) else functools.partial(_same, ring)
        )
        self._dsn, self._batch, self._poll = asyncpg_dsn(database_url), batch, poll
        self.clock = clock
        # no redirects: a receiver must not bounce signed events to an address nobody approved
        self._http = http or httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        self._on_states = on_states
        self._log_retention = log_retention
        self._wake = asyncio.Event()
        self._limit = asyncio.Semaphore(CONCURRENCY)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def run(self, stop: asyncio.Event) -> None:
        """Loop until `stop`, dispatching while this instance holds the webhooks lock."""

        async def dispatch_while_leading(conn: asyncpg.Connection) -> None:
            await conn.add_listener(CHANNEL, lambda *_: self._wake.set())
            gauge_at = pruned_at = 0.0
            while not stop.is_set():
                sent = await self.dispatch_once()
                if time.monotonic() - gauge_at >= GAUGE_EVERY_SECONDS:
                    await self.refresh_gauge()
                    gauge_at = time.monotonic()
                if time.monotonic() - pruned_at >= PRUNE_EVERY_SECONDS:
                    await self.prune_log()
                    pruned_at = time.monotonic()
                if sent < self._batch:
                    self._wake.clear()
                    await _first_of(self._wake, stop, seconds=self._poll)

        await run_as_leader(
            name="webhook dispatcher",
            dsn=self._dsn,
            lock_key=WEBHOOKS_LOCK_KEY,
            stop=stop,
            lock_retry=2.0,
            failure_retry=1.0,
            work=dispatch_while_leading,
        )

    async def dispatch_once(self) -> int:
        """Send every message due now (one batch) and record the outcomes; returns how many."""
        now = self.clock()
        async with transaction(self._sm) as session:
            rows = await repository.due(session, now=now, limit=self._batch)
            if not rows:
                return 0
            bodies = await self._bodies(session, rows, now)
        signers = self._signers(rows)
        outcomes = await asyncio.gather(
            *(
                self._send(row, body, signers[row.endpoint_id], now)
                for row, body in zip(rows, bodies, strict=True)
            )
        )
        async with transaction(self._sm) as session:
            disabled = await webhooks.record(
                session, list(outcomes), now=now, policy=self._policy, prefix=self._prefix
            )
        for endpoint_id in disabled:
            logger.warning("webhook endpoint disabled", extra={"endpoint_id": str(endpoint_id)})
        if disabled:
            await self.refresh_gauge()
        return len(rows)

    async def prune_log(self) -> int:
        """Forget settled messages older than the log retention, in bounded batches."""
        before, total = self.clock() - self._log_retention, 0
        for _ in range(PRUNE_MAX_BATCHES):
            async with transaction(self._sm) as session:
                done = await repository.prune(session, before=before, batch=PRUNE_BATCH)
            total += done
            if done < PRUNE_BATCH:
                break
        return total

    async def refresh_gauge(self) -> None:
        """Report how many endpoints are in each state."""
        if self._on_states is None:
            return
        async with transaction(self._sm) as session:
            counts = await repository.count_by_state(session)
        self._on_states({state: counts.get(state, 0) for state in EndpointState})

    async def _bodies(
        self, session: AsyncSession, rows: Sequence[Row[Any]], now: datetime
    ) -> list[str]:
        """Each message as its JSON body: `{"type", "timestamp", "data"}`, Standard Webhooks'
        shape; a delivery goes out as the record on the inbox topic, sealed payload included."""
        wanted = [r.message_id for r in rows if r.event_type == DeliveryPublished.TYPE]
        records = {}
        if wanted:
            found = await load_outgoing(session, prefix=self._prefix, delivery_ids=wanted)
            records = {o.delivery_id: orjson.loads(o.value) for o in found}
        stamp = json_datetime(now)
        bodies = []
        for r in rows:
            kind, data = r.event_type, r.payload
            if r.message_id in records:
                kind, data = ResponseDelivered.TYPE, records[r.message_id]
            bodies.append(orjson.dumps({"type": kind, "timestamp": stamp, "data": data}).decode())
        return bodies

    def _signers(self, rows: Sequence[Row[Any]]) -> dict[uuid.UUID, Webhook | None]:
        """Each endpoint's signer; None for a secret no configured KEK opens (a lost key):
        its calls fail and are retried, the others go out."""
        signers: dict[uuid.UUID, Webhook | None] = {}
        for row in rows:
            if row.endpoint_id in signers:
                continue
            try:
                secret = webhooks.open_secret(self._ring(), row.endpoint_id, row.sealed_secret)
            except SealError:
                logger.error(
                    "webhook secret does not open", extra={"endpoint_id": str(row.endpoint_id)}
                )
                signers[row.endpoint_id] = None
            else:
                signers[row.endpoint_id] = Webhook(secret)
        return signers

    async def _send(
        self, row: Row[Any], body: str, signer: Webhook | None, now: datetime
    ) -> Outcome:
        message_id, attempt = str(row.message_id), row.attempts + 1
        if signer is None:
            return Outcome(row.id, row.endpoint_id, attempt, None, SealError.__name__, 0)
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signer.sign(message_id, now, body),
        }
        status, error, started = None, None, time.monotonic()
        async with self._limit:
            try:
                response = await self._http.post(row.url, content=body, headers=headers)
                status = response.status_code
            except httpx.HTTPError as exc:
                error = type(exc).__name__
        elapsed = int((time.monotonic() - started) * 1000)
        if status is None or not is_success(status):
            logger.info(
                "webhook call failed",
                extra={
                    "endpoint_id": str(row.endpoint_id),
                    "message_id": message_id,
                    "attempt": attempt,
                    "status_code": status,
                    "error": error,
                },
            )
        return Outcome(row.id, row.endpoint_id, attempt, status, error, elapsed)


async def _first_of(*events: asyncio.Event, seconds: float) -> None:
    """Wait until one of `events` is set, or `seconds` pass."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def _same(ring: KeyRing) -> KeyRing:
    return ring
