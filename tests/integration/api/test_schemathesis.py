"""Schemathesis against the OpenAPI documents of intake and registry, with valid tokens.

Each operation is called with a token of the kind of caller it serves and the scopes it
declares. The run looks for server errors, responses that break their own schema, and (a check
of ours) any object FR can reach that DE can reach too: every request FR makes successfully on
an object route is replayed with DE's token and must get 404.

The apps run over a database of their own, since the fuzzer changes reference data through the
admin API; path parameters are pointed at objects FR owns, so object routes are exercised on
real objects and not only on random ids that 404 for everyone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import Case, CheckContext, Response
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from caseshare.stack.embedded import EmbeddedPostgres, EmbeddedTansu
from services.intake.app import create_app as create_intake
from services.registry import migrate
from services.registry.app import create_app as create_registry
from services.registry.reference import seed
from shared.auth.scopes import Scope
from shared.db import create_engine, create_sessionmaker, transaction
from tests.integration.api.conftest import World, build_world, intake_settings, registry_settings
from tests.tokens import TokenMint

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

FUZZ_DATABASE = "caseshare_fuzz"
AUTHORITY_SCOPES = {Scope.CASES_WRITE, Scope.CASES_READ, Scope.INBOX_READ}
FUZZ = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
)


@pytest.fixture(scope="session")
def fuzz_database_url(postgres: EmbeddedPostgres) -> str:
    postgres.psql(f'DROP DATABASE IF EXISTS "{FUZZ_DATABASE}"')
    postgres.psql(f'CREATE DATABASE "{FUZZ_DATABASE}"')
    url = postgres.url.rsplit("/", 1)[0] + f"/{FUZZ_DATABASE}"
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
async def fuzz_world(fuzz_database_url: str, state_dir: Path) -> AsyncIterator[World]:
    engine = create_engine(fuzz_database_url, pool_size=2)
    sm = create_sessionmaker(engine)
    async with transaction(sm) as session:
        await seed.load(session)
        await seed.ensure_demo_keys(session, state_dir / "keys")
    yield await build_world(sm)
    await engine.dispose()


@pytest.fixture(scope="session")
def lifespans() -> Iterator[None]:
    """Schemathesis starts each app's lifespan on its own loop; stop them before PostgreSQL."""
    yield
    asgi.shutdown_lifespans()


def _load(app: FastAPI, world: World) -> Any:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    owned = {
        "case_id": world.cases["FR"],
        "delivery_id": world.deliveries["FR"],
        "response_id": world.response_id,
    }

    @schema.hook
    def map_path_parameters(
        context: Any, path_parameters: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        if path_parameters is None:
            return None
        return {k: owned.get(k, v) for k, v in path_parameters.items()}

    return schema


@pytest.fixture(scope="session")
def intake_schema(
    fuzz_database_url: str,
    fuzz_world: World,
    mint: TokenMint,
    broker: EmbeddedTansu,
    lifespans: None,
) -> Any:
    values = {"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap}
    app = create_intake(intake_settings(fuzz_database_url, **values), http=mint.http())
    return _load(app, fuzz_world)


@pytest.fixture(scope="session")
def registry_schema(
    fuzz_database_url: str,
    fuzz_world: World,
    mint: TokenMint,
    broker: EmbeddedTansu,
    lifespans: None,
) -> Any:
    values = {
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "REGISTRY_STREAM_MAX_SECONDS": 1,
        "REGISTRY_STREAM_PING_SECONDS": 1,
    }
    app = create_registry(registry_settings(fuzz_database_url, **values), http=mint.http())
    return _load(app, fuzz_world)


def _scopes(case: Case) -> set[str]:
    security = case.operation.definition.raw.get("security", [])
    return {scope for alternative in security[:1] for v in alternative.values() for scope in v}


def token_for(mint: TokenMint, case: Case) -> str:
    """A token of the caller this operation serves, holding the scopes it declares."""
    scopes = tuple(sorted(_scopes(case)))
    if Scope.RESPONSES_WRITE in scopes:
        return mint.platform("telegram", scopes)
    if AUTHORITY_SCOPES & set(scopes):
        return mint.authority("FR")
    if Scope.REGISTRY_ADMIN in scopes:
        return mint.admin(scopes)
    return mint.coordinator(scopes)


def cross_jurisdiction_check(
    mint: TokenMint, probed: set[str]
) -> Callable[[CheckContext, Response, Case], None]:
    """FR's successful request on an object, replayed as DE, must find nothing."""

    def cross_jurisdiction_isolation(ctx: CheckContext, response: Response, case: Case) -> None:
        if not case.path_parameters or not AUTHORITY_SCOPES & _scopes(case):
            return
        if not 200 <= response.status_code < 300:
            return
        probed.add(case.operation.label)
        as_de = {**(case.headers or {}), "Authorization": f"Bearer {mint.authority('DE')}"}
        peer = case.call(headers=as_de)
        if peer.status_code != 404:
            raise AssertionError(
                f"DE got {peer.status_code} on FR's object: {case.method} {case.formatted_path}"
            )

    return cross_jurisdiction_isolation


def exercise(case: Case, mint: TokenMint, probed: set[str]) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {token_for(mint, case)}"},
        checks=[
            not_a_server_error,
            response_schema_conformance,
            content_type_conformance,
            cross_jurisdiction_check(mint, probed),
        ],
    )


def fuzz(schema: Any, mint: TokenMint, probed: set[str]) -> list[str]:
    """Run every operation's strategy; return the labels of the operations exercised.

    `probed` collects the operations on which FR succeeded and DE was then tried.
    """
    labels = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @FUZZ
        def run(case: Case) -> None:
            exercise(case, mint, probed)

        run()
        labels.append(operation.label)
    return labels


# Driven through `as_strategy` rather than `schema.parametrize`: the lazy, fixture-based
# parametrization of schemathesis 4.32 reads a private pytest attribute that pytest 9 dropped.
def test_intake_api(intake_schema: Any, mint: TokenMint) -> None:
    probed: set[str] = set()
    exercised = fuzz(intake_schema, mint, probed)
    assert {"GET /v1/cases/{case_id}", "POST /v1/inbox/{delivery_id}/ack"} <= set(exercised)
    # The isolation check must have had real objects to try, or it proved nothing.
    assert {"GET /v1/cases/{case_id}", "GET /v1/inbox/{delivery_id}"} <= probed


def test_registry_api(registry_schema: Any, mint: TokenMint) -> None:
    exercised = fuzz(registry_schema, mint, set())
    assert {"GET /v1/registry/stream", "PATCH /v1/registry/jurisdictions/{code}"} <= set(exercised)
