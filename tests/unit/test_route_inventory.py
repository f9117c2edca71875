"""Every route of intake, registry and issuer is authenticated, unless it is on the allow-list.

A route added without a security dependency fails here before it can ship; so does a case-data
route that authenticates without passing through the access guard (rate limit and audit).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import BaseRoute

from services.intake import deps as intake_deps
from services.intake.app import create_app as create_intake
from services.intake.settings import IntakeSettings
from services.issuer.app import create_app as create_issuer
from services.issuer.settings import IssuerSettings
from services.registry.app import create_app as create_registry
from services.registry.settings import RegistrySettings
from services.registry.web import deps as registry_deps
from services.registry.web.dashboard import auth as dashboard_auth
from services.registry.web.dashboard import pages as dashboard_pages
from shared.auth.deps import authenticate
from tests.conftest import HMAC_KEY

# Public on purpose: health, metrics, API and event documentation, and the OAuth surface.
ALLOW_LIST = frozenset(
    {
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/asyncapi.json",
        "/schemas/{ce_type}.json",
        "/jwks.json",
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        "/.well-known/evidence-jwks.json",  # public keys: bundles verify without a token
        "/token",
        # Signing in and out, and the static assets of the sign-in and dashboard pages.
        "/authorize",
        "/logout",
        "/dashboard/login",
        "/dashboard/callback",
        "/dashboard/logout",
        "/dashboard/signed-out",
        "/dashboard/static",
    }
)
AUTHENTICATORS: frozenset[Callable[..., Any]] = frozenset(
    # The auditor and the recaller accept either of two scopes; dashboard pages and stream go
    # by session.
    {
        authenticate,
        registry_deps._auditor,
        intake_deps._recaller,
        dashboard_auth.signed_in,
        dashboard_pages._stream_viewer,
    }
)
# The caller dependencies that pass every request through `services.registry.web.access.admit`.
GUARDED_CALLERS: frozenset[Callable[..., Any]] = frozenset(
    {
        intake_deps._writer,
        intake_deps._reader,
        intake_deps._inbox,
        intake_deps._platform,
        intake_deps._recaller,
        registry_deps._coordinator,
        registry_deps._admin,
        registry_deps._auditor,
        dashboard_auth._coordinator_page,
        dashboard_pages._stream_viewer,
    }
)


def apps() -> dict[str, FastAPI]:
    common = {"SELECTOR_HMAC_KEY": HMAC_KEY}
    return {
        "intake": create_intake(IntakeSettings.model_validate(common)),
        "registry": create_registry(RegistrySettings.model_validate(common)),
        "issuer": create_issuer(IssuerSettings.model_validate({})),
    }


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dep in dependant.dependencies:
        if dep.call is not None:
            yield dep.call
        yield from _calls(dep)


def routes(app: FastAPI) -> list[tuple[str, BaseRoute]]:
    """(full path, route) for every route, including those of included routers."""
    return [(str(ctx.path), ctx.original_route) for ctx in iter_route_contexts(app.routes)]


@pytest.mark.parametrize("service", ["intake", "registry", "issuer"])
def test_every_route_is_authenticated_or_allow_listed(service: str) -> None:
    found = routes(apps()[service])
    assert len(found) > 5
    unguarded = [
        path
        for path, route in found
        if path not in ALLOW_LIST
        and (not isinstance(route, APIRoute) or not AUTHENTICATORS & set(_calls(route.dependant)))
    ]
    assert unguarded == []


@pytest.mark.parametrize("service", ["intake", "registry"])
def test_every_authenticated_route_passes_the_access_guard(service: str) -> None:
    guarded = [
        (path, route)
        for path, route in routes(apps()[service])
        if isinstance(route, APIRoute) and path not in ALLOW_LIST
    ]
    assert guarded
    bypassing = [p for p, r in guarded if not GUARDED_CALLERS & set(_calls(r.dependant))]
    assert bypassing == []


@pytest.mark.parametrize("service", ["intake", "registry"])
def test_the_openapi_document_shows_a_security_requirement_for_each_operation(
    service: str,
) -> None:
    document = apps()[service].openapi()
    missing = [
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        if path not in ALLOW_LIST
        for method, operation in item.items()
        if not operation.get("security")
    ]
    assert missing == []


def test_the_allow_list_names_no_case_data() -> None:
    assert not {path for path in ALLOW_LIST if path.startswith("/v1")}
