"""The contract over HTTP: the AsyncAPI document and each event's JSON Schema.

Public and unauthenticated on purpose: they describe message shapes, never data, and an
integrator's code generator should be able to fetch them before it holds a token.
"""

from __future__ import annotations

from functools import cache

import orjson
from fastapi import APIRouter, Response

from shared.contracts.asyncapi import asyncapi_document
from shared.contracts.schemas import event_schema
from shared.errors import NotFound
from shared.events import EVENT_TYPES


@cache
def _document(prefix: str) -> bytes:
    return orjson.dumps(asyncapi_document(prefix))


@cache
def _schema(ce_type: str) -> bytes:
    return orjson.dumps(event_schema(ce_type))


def asyncapi_router(*, prefix: str = "caseshare") -> APIRouter:
    """`GET /asyncapi.json` and `GET /schemas/{ce_type}.json`, for topics under `prefix`."""
    router = APIRouter(tags=["contracts"])

    @router.get("/asyncapi.json", response_class=Response)
    async def asyncapi() -> Response:
        """The AsyncAPI 3.0 document of every topic the hub writes."""
        return Response(_document(prefix), media_type="application/json")

    @router.get("/schemas/{ce_type}.json", response_class=Response)
    async def schema(ce_type: str) -> Response:
        """The JSON Schema (draft 2020-12) of one event type's payload."""
        if ce_type not in EVENT_TYPES:
            raise NotFound(f"no event type {ce_type!r}")
        return Response(_schema(ce_type), media_type="application/schema+json")

    return router
