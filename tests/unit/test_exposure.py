"""What the APIs give away when something goes wrong, and docs that production can switch off."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI

from services.intake.app import create_app as create_intake
from services.intake.settings import IntakeSettings
from services.intake.state import IntakeState
from services.registry.app import create_app as create_registry
from services.registry.settings import RegistrySettings
from shared.auth.principal import Principal
from shared.state import state_of
from tests.conftest import HMAC_KEY

SECRET = "sk-internal-3f9a"  # stands for anything an exception message might carry


def intake(**values: object) -> FastAPI:
    return create_intake(IntakeSettings.model_validate({"SELECTOR_HMAC_KEY": HMAC_KEY, **values}))


def registry(**values: object) -> FastAPI:
    return create_registry(RegistrySettings.model_validate(values))


def client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://api.test")


@pytest.mark.parametrize(
    "app",
    [
        pytest.param(lambda: intake(INTAKE_DOCS_ENABLED=False), id="intake"),
        pytest.param(lambda: registry(REGISTRY_DOCS_ENABLED=False), id="registry"),
    ],
)
async def test_docs_switched_off_are_not_served(app: object) -> None:
    async with client(app()) as http:  # type: ignore[operator]
        for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
            assert (await http.get(path)).status_code == 404, path


async def test_docs_are_served_by_default() -> None:
    async with client(intake()) as http:
        assert (await http.get("/openapi.json")).status_code == 200
        assert (await http.get("/docs")).status_code == 200


class ExplodingValidator:
    async def validate(self, token: str) -> Principal:
        raise RuntimeError(f"cannot reach {SECRET} at /srv/caseshare/shared/auth/validation.py")


class AuthorityValidator:
    async def validate(self, token: str) -> Principal:
        return Principal(
            subject="authority-fr",
            client_id="authority-fr",
            scopes=frozenset({"cases:write"}),
            jurisdiction="FR",
            platform=None,
            token_id="jti-1",
            expires_at=datetime(2030, 1, 1, tzinfo=UTC),
        )


async def test_an_internal_error_answers_without_a_stack_trace() -> None:
    app = intake()
    state_of(app, IntakeState).token_validator = ExplodingValidator()  # type: ignore[assignment]
    async with client(app) as http:
        answer = await http.get("/v1/cases", headers={"Authorization": "Bearer x"})
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/problem+json"
    for leak in ("Traceback", "RuntimeError", SECRET, ".py", 'File "'):
        assert leak not in answer.text
    assert set(answer.json()) == {"type", "title", "status", "detail", "instance"}


async def test_a_refused_body_is_not_echoed_back() -> None:
    """Validation errors name the field, never the submitted value (it may be personal data)."""
    app = intake()
    state_of(app, IntakeState).token_validator = AuthorityValidator()  # type: ignore[assignment]
    state = state_of(app, IntakeState)
    state.sessionmaker = state.context = None  # type: ignore[assignment]  # never used: the body is refused first
    body = {"reference": "R-1", "selectors": [{"kind": "phone", "value": "+33612345678"}]}
    async with client(app) as http:
        answer = await http.post(
            "/v1/cases", headers={"Authorization": "Bearer x"}, json=body | {"x": SECRET}
        )
    assert answer.status_code == 422
    assert "+33612345678" not in answer.text
    assert SECRET not in answer.text
