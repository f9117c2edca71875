"""Webhook use cases: self-service registration, admin approval, deletion, and recording what
each call to an endpoint did (retry, give up, disable).

Every state change of an endpoint leaves an audit entry and an outbox event in the caller's
transaction. The signing secret is made here, sealed under the key-encryption key ring bound to
the endpoint's id, and returned once; neither the URL nor the secret enters the audit log.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.audit import service as audit
from services.registry.context import Actor
from services.registry.store import outbox
from services.registry.webhooks import repository
from services.registry.webhooks.models import WebhookEndpoint
from services.registry.webhooks.rules import (
    APPROVABLE,
    MAX_ENDPOINTS,
    EndpointState,
    MessageState,
    Outcome,
    RetryPolicy,
    UrlRefused,
    check_url,
    new_secret,
)
from services.registry.webhooks.schemas import (
    AttemptOut,
    EndpointCreate,
    EndpointCreated,
    EndpointOut,
)
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.events import WebhookEndpointChanged, WebhookEndpointDisabled
from shared.keywrap import KeyRing


def secret_context(endpoint_id: uuid.UUID) -> str:
    """What a sealed secret is bound to: a ciphertext moved to another row does not open."""
    return f"webhook-endpoint:{endpoint_id}"


def open_secret(ring: KeyRing, endpoint_id: uuid.UUID, sealed: str) -> str:
    """The endpoint's `whsec_` secret, for signing (router) or an idempotent replay (intake)."""
    return ring.open(sealed, context=secret_context(endpoint_id)).decode()


def _out(e: WebhookEndpoint) -> EndpointOut:
    return EndpointOut(
        id=e.id,
        jurisdiction=e.jurisdiction,
        url=e.url,
        description=e.description,
        state=EndpointState(e.state),
        created_at=e.created_at,
        approved_at=e.approved_at,
        disabled_at=e.disabled_at,
        consecutive_failures=e.consecutive_failures,
        last_success_at=e.last_success_at,
    )


async def _changed(
    session: AsyncSession, e: WebhookEndpoint, *, by: str, action: str, prefix: str
) -> None:
    now = datetime.now(UTC)
    await audit.append(
        session,
        actor=by,
        action=action,
        subject_type="webhook_endpoint",
        subject_id=str(e.id),
        details={"jurisdiction": e.jurisdiction, "state": e.state},
    )
    event = WebhookEndpointChanged(
        endpoint_id=e.id, jurisdiction=e.jurisdiction, state=e.state, changed_by=by, changed_at=now
    )
    outbox.add(session, event, key=str(e.id), subject=str(e.id), prefix=prefix)


async def register(
    session: AsyncSession,
    *,
    actor: Actor,
    data: EndpointCreate,
    ring: KeyRing,
    allow_insecure_loopback: bool,
    prefix: str,
) -> EndpointCreated:
    """Record a new endpoint, pending an admin's approval, with a fresh signing secret."""
    try:
        url = check_url(data.url, allow_insecure_loopback=allow_insecure_loopback)
    except UrlRefused as exc:
        raise ValidationFailed(str(exc)) from exc
    await repository.lock_jurisdiction(session, actor.jurisdiction)
    if await repository.count_live(session, actor.jurisdiction) >= MAX_ENDPOINTS:
        raise Conflict(f"a jurisdiction may hold at most {MAX_ENDPOINTS} webhook endpoints")
    endpoint_id, secret = uuid.uuid4(), new_secret()
    endpoint = WebhookEndpoint(
        id=endpoint_id,
        jurisdiction=actor.jurisdiction,
        url=url,
        description=data.description,
        state=EndpointState.PENDING_APPROVAL,
        sealed_secret=ring.seal(secret.encode(), context=secret_context(endpoint_id)),
        created_by_client=actor.client_id,
        consecutive_failures=0,
    )
    session.add(endpoint)
    await session.flush()
    await session.refresh(endpoint)
    by = actor.client_id
    await _changed(session, endpoint, by=by, action="webhook.registered", prefix=prefix)
    return EndpointCreated(**_out(endpoint).model_dump(), secret=secret)


async def reveal_secret(
    session: AsyncSession, *, endpoint_id: uuid.UUID, jurisdiction: str, ring: KeyRing
) -> str:
    """The secret again, for the replay of the registration under its Idempotency-Key."""
    e = await repository.get_owned(session, endpoint_id=endpoint_id, jurisdiction=jurisdiction)
    if e is None:
        raise NotFound("webhook endpoint not found")
    return open_secret(ring, e.id, e.sealed_secret)


async def list_for(session: AsyncSession, *, jurisdiction: str) -> list[EndpointOut]:
    """The caller's endpoints, whatever their state except deleted."""
    found = await repository.list_endpoints(session, jurisdiction=jurisdiction, state=None)
    return [_out(e) for e in found]


async def list_all(session: AsyncSession, *, state: EndpointState | None) -> list[EndpointOut]:
    """Every jurisdiction's endpoints, for the admins (e.g. those pending approval)."""
    found = await repository.list_endpoints(session, jurisdiction=None, state=state)
    return [_out(e) for e in found]


async def read(session: AsyncSession, *, endpoint_id: uuid.UUID, jurisdiction: str) -> EndpointOut:
    """One of the caller's endpoints; another jurisdiction's is a 404, as if it did not exist."""
    e = await repository.get_owned(session, endpoint_id=endpoint_id, jurisdiction=jurisdiction)
    if e is None:
        raise NotFound("webhook endpoint not found")
    return _out(e)


async def attempts(
    session: AsyncSession, *, endpoint_id: uuid.UUID, jurisdiction: str, limit: int
) -> list[AttemptOut]:
    """The delivery log of one of the caller's endpoints, newest first; content never kept."""
    e = await repository.get_owned(session, endpoint_id=endpoint_id, jurisdiction=jurisdiction)
    if e is None:
        raise NotFound("webhook endpoint not found")
    rows = await repository.attempts_of(session, e.id, limit=limit)
    return [
        AttemptOut(
            message_id=message_id,
            event_type=event_type,
            attempt=a.attempt,
            status_code=a.status_code,
            error_class=a.error_class,
            duration_ms=a.duration_ms,
            attempted_at=a.attempted_at,
        )
        for a, message_id, event_type in rows
    ]


async def delete(
    session: AsyncSession, *, actor: Actor, endpoint_id: uuid.UUID, prefix: str
) -> None:
    """Stop calling the endpoint; its row and delivery log stay for the record."""
    e = await repository.get_owned(
        session, endpoint_id=endpoint_id, jurisdiction=actor.jurisdiction, lock=True
    )
    if e is None:
        raise NotFound("webhook endpoint not found")
    e.state, e.deleted_at = EndpointState.DELETED, datetime.now(UTC)
    await _changed(session, e, by=actor.client_id, action="webhook.deleted", prefix=prefix)


async def approve(
    session: AsyncSession, *, admin: str, endpoint_id: uuid.UUID, prefix: str
) -> EndpointOut:
    """An admin lets the hub call a new endpoint, or one disabled after failures again."""
    e = await repository.get_owned(session, endpoint_id=endpoint_id, jurisdiction=None, lock=True)
    if e is None:
        raise NotFound("webhook endpoint not found")
    if EndpointState(e.state) not in APPROVABLE:
        raise Conflict(f"the endpoint is {e.state}; only pending or disabled ones are approved")
    now = datetime.now(UTC)
    e.state, e.approved_at, e.approved_by = EndpointState.ACTIVE, now, admin
    e.disabled_at, e.consecutive_failures, e.failing_since = None, 0, None
    await _changed(session, e, by=admin, action="webhook.approved", prefix=prefix)
    return _out(e)


async def record(
    session: AsyncSession,
    outcomes: list[Outcome],
    *,
    now: datetime,
    policy: RetryPolicy,
    prefix: str,
) -> list[uuid.UUID]:
    """Log each call, schedule or give up each message, keep each endpoint's failure streak,
    and disable those that keep failing; returns the endpoints disabled now."""
    for o in outcomes:
        repository.log_attempt(
            session,
            row_id=o.row_id,
            endpoint_id=o.endpoint_id,
            attempt=o.attempt,
            status_code=o.status_code,
            error_class=o.error_class,
            duration_ms=o.duration_ms,
            at=now,
        )
        retry_at = None if o.succeeded else policy.next_attempt(o.attempt, now)
        state = (
            MessageState.DELIVERED
            if o.succeeded
            else MessageState.PENDING
            if retry_at is not None
            else MessageState.FAILED
        )
        await repository.mark_message(
            session,
            row_id=o.row_id,
            attempts=o.attempt,
            state=state,
            next_attempt_at=retry_at,
            delivered_at=now if o.succeeded else None,
        )
    disabled = []
    for endpoint_id in sorted({o.endpoint_id for o in outcomes}):
        mine = [o for o in outcomes if o.endpoint_id == endpoint_id]
        if await _streak(session, endpoint_id, mine, now=now, policy=policy, prefix=prefix):
            disabled.append(endpoint_id)
    return disabled


async def _streak(
    session: AsyncSession,
    endpoint_id: uuid.UUID,
    outcomes: list[Outcome],
    *,
    now: datetime,
    policy: RetryPolicy,
    prefix: str,
) -> bool:
    """Update the endpoint's failure streak; True if it was disabled now."""
    e = await repository.get_owned(session, endpoint_id=endpoint_id, jurisdiction=None, lock=True)
    if e is None or e.state != EndpointState.ACTIVE:
        return False
    if any(o.succeeded for o in outcomes):
        # the receiver is up: a message it keeps refusing runs out of attempts on its own
        e.consecutive_failures, e.failing_since, e.last_success_at = 0, None, now
        return False
    e.consecutive_failures += len(outcomes)
    e.failing_since = e.failing_since or now
    if not policy.should_disable(
        consecutive_failures=e.consecutive_failures, failing_since=e.failing_since, now=now
    ):
        return False
    e.state, e.disabled_at = EndpointState.DISABLED, now
    await audit.append(
        session,
        actor="router",
        action="webhook.disabled",
        subject_type="webhook_endpoint",
        subject_id=str(e.id),
        details={"jurisdiction": e.jurisdiction, "consecutive_failures": e.consecutive_failures},
    )
    event = WebhookEndpointDisabled(
        endpoint_id=e.id,
        jurisdiction=e.jurisdiction,
        consecutive_failures=e.consecutive_failures,
        failing_since=e.failing_since,
        disabled_at=now,
    )
    outbox.add(session, event, key=str(e.id), subject=str(e.id), prefix=prefix)
    return True
