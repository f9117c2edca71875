"""How intake is served: the worker factory uvicorn imports, and orjson-rendered answers."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, iter_route_contexts

from services.intake import app as intake_app
from services.intake.settings import IntakeSettings
from shared.web import FastJSONResponse, created_response


def test_the_worker_factory_named_to_uvicorn_builds_the_app(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INTAKE_WORKERS", "2")
    configured: list[str] = []
    monkeypatch.setattr(intake_app.logs, "configure", lambda **kw: configured.append(kw["service"]))
    frozen: list[bool] = []
    monkeypatch.setattr(intake_app.heap, "freeze_startup_objects", lambda: frozen.append(True))
    module, _, name = intake_app.FACTORY.partition(":")
    made = getattr(importlib.import_module(module), name)()
    assert isinstance(made, FastAPI)
    assert configured == ["intake"]  # each worker sets up its own logging
    assert frozen == [True]  # and moves its start-up objects out of the collector's way


def test_one_worker_is_the_default() -> None:
    assert IntakeSettings.model_fields["workers"].default == 1


@pytest.mark.parametrize(
    "body",
    [
        {"id": "0b6f", "links": [], "selectors": [{"kind": "email", "masked": "a***@x.eu"}]},
        {"reference": "Zürich-€-✓", "emergency": False, "version": 1, "lead": None},
    ],
)
def test_orjson_answers_are_the_bytes_starlette_would_send(body: dict[str, object]) -> None:
    assert FastJSONResponse(body).body == JSONResponse(body).body


def test_created_response_renders_with_orjson() -> None:
    answer = created_response(
        201,
        {"at": datetime(2026, 1, 1, tzinfo=UTC).isoformat()},
        replayed=True,
        location="/v1/cases/x",
    )
    assert isinstance(answer, FastJSONResponse)
    assert answer.headers["Idempotent-Replayed"] == "true"


def _solved(dependant: Dependant) -> list[str]:
    """Every dependency FastAPI calls for a route, depth first."""
    return [
        name
        for sub in dependant.dependencies
        for name in (*_solved(sub), getattr(sub.call, "__name__", type(sub.call).__name__))
    ]


def test_registration_solves_only_its_callers_chain() -> None:
    """Intake's hottest route: the token, its scope check and the write guard, nothing else
    (each solved dependency costs about 8 us a request; the state is read in the route)."""
    app = intake_app.create_app(IntakeSettings.model_validate({"SELECTOR_HMAC_KEY": "k" * 32}))
    (route,) = (
        ctx.original_route
        for ctx in iter_route_contexts(app.routes)
        if str(ctx.path) == "/v1/cases"
        and isinstance(ctx.original_route, APIRoute)
        and "POST" in ctx.original_route.methods
    )
    assert _solved(route.dependant) == [
        "OAuth2ClientCredentialsBearer",
        "authenticate",
        "_writer",
    ]
