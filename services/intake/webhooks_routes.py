"""Webhook endpoints, self-service: an authority registers, lists and deletes its own.

A new endpoint waits for an administrator's approval (registry admin API) before the hub
calls it. The signing secret is in the registration's answer only, and again in a replay of it
under the same Idempotency-Key; the key row keeps the answer without the secret, which is
sealed at rest with the endpoint. Another jurisdiction's endpoint is a 404.
"""

from __future__ import annotations

import uuid
from functools import cache
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from services.intake.deps import (
    ContextDep,
    IdempotencyKeyHeader,
    InboxReaderDep,
    SessionmakerDep,
)
from services.intake.settings import IntakeSettings
from services.registry.store import idempotency
from services.registry.webhooks import service as webhooks
from services.registry.webhooks.schemas import (
    AttemptOut,
    EndpointCreate,
    EndpointCreated,
    EndpointOut,
)
from shared.db import transaction
from shared.keywrap import KeyRing
from shared.schemas import MAX_PAGE
from shared.web import created_response

PATH = "/v1/webhooks/endpoints"


def webhooks_router(settings: IntakeSettings) -> APIRouter:
    """The routes, bound to the settings that say which URLs are allowed and seal secrets."""
    router = APIRouter(prefix=PATH, tags=["webhooks"])

    @cache
    def ring() -> KeyRing:
        # built on first use: the development ring is a file that the first caller creates
        return settings.key_ring(settings.state_dir)

    @router.post("", status_code=201, response_model=EndpointCreated)
    async def register_endpoint(
        data: EndpointCreate,
        request: Request,
        actor: InboxReaderDep,
        sm: SessionmakerDep,
        ctx: ContextDep,
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> JSONResponse:
        """Register an HTTPS endpoint for the caller's inbox events; it is pending until an
        admin approves it. The answer carries the signing secret (`whsec_...`)."""
        secret: list[str] = []

        async with transaction(sm) as session:

            async def act() -> tuple[int, dict[str, object]]:
                created = await webhooks.register(
                    session,
                    actor=actor,
                    data=data,
                    ring=ring(),
                    allow_insecure_loopback=settings.webhooks_allow_insecure_loopback,
                    prefix=ctx.topic_prefix,
                )
                secret.append(created.secret)
                return 201, created.model_dump(mode="json", exclude={"secret"})

            status, body, replayed = await idempotency.run_once(
                session,
                client_id=actor.client_id,
                key=idempotency_key,
                method="POST",
                path=request.url.path,
                body=None if idempotency_key is None else data.model_dump(mode="json"),
                action=act,
            )
            if not secret:  # a replay: the same answer, secret included
                shown = await webhooks.reveal_secret(
                    session,
                    endpoint_id=uuid.UUID(str(body["id"])),
                    jurisdiction=actor.jurisdiction,
                    ring=ring(),
                )
                secret.append(shown)
        body = {**body, "secret": secret[0]}
        return created_response(status, body, replayed=replayed, location=f"{PATH}/{body['id']}")

    @router.get("", response_model=list[EndpointOut])
    async def list_endpoints(actor: InboxReaderDep, sm: SessionmakerDep) -> list[EndpointOut]:
        """The caller's endpoints (not deleted), with their state and failure streak."""
        async with transaction(sm) as session:
            return await webhooks.list_for(session, jurisdiction=actor.jurisdiction)

    @router.get("/{endpoint_id}", response_model=EndpointOut)
    async def get_endpoint(
        endpoint_id: uuid.UUID, actor: InboxReaderDep, sm: SessionmakerDep
    ) -> EndpointOut:
        async with transaction(sm) as session:
            return await webhooks.read(
                session, endpoint_id=endpoint_id, jurisdiction=actor.jurisdiction
            )

    @router.get("/{endpoint_id}/attempts", response_model=list[AttemptOut])
    async def list_attempts(
        endpoint_id: uuid.UUID,
        actor: InboxReaderDep,
        sm: SessionmakerDep,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    ) -> list[AttemptOut]:
        """The endpoint's delivery log, newest first: each call's status code or error class."""
        async with transaction(sm) as session:
            return await webhooks.attempts(
                session, endpoint_id=endpoint_id, jurisdiction=actor.jurisdiction, limit=limit
            )

    @router.delete("/{endpoint_id}", status_code=204)
    async def delete_endpoint(
        endpoint_id: uuid.UUID, actor: InboxReaderDep, sm: SessionmakerDep, ctx: ContextDep
    ) -> Response:
        """Stop calling the endpoint; what it was sent stays in the delivery log."""
        async with transaction(sm) as session:
            await webhooks.delete(
                session, actor=actor, endpoint_id=endpoint_id, prefix=ctx.topic_prefix
            )
        return Response(status_code=204)

    return router
