"""Every 201 or 202 the APIs answer points its Location at something the caller can GET.

The routes are walked from the apps themselves, so a new creating route fails this test until
it is given a way to be called here (and its Location then has to resolve).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI

from tests import factories
from tests.tokens import TokenMint, bearer

pytestmark = pytest.mark.integration

Call = Callable[[httpx.AsyncClient, TokenMint], Awaitable[tuple[httpx.Response, dict[str, str]]]]


async def _case(
    client: httpx.AsyncClient, mint: TokenMint
) -> tuple[httpx.Response, dict[str, str]]:
    headers = bearer(mint.authority("FR"))
    body = factories.case().model_dump(mode="json")
    return await client.post("/v1/cases", headers=headers, json=body), headers


async def _response(
    client: httpx.AsyncClient, mint: TokenMint
) -> tuple[httpx.Response, dict[str, str]]:
    headers = bearer(mint.platform("telegram"))
    body = factories.response(selectors=[factories.selector()]).model_dump(mode="json")
    return await client.post("/v1/responses", headers=headers, json=body), headers


async def _platform(
    client: httpx.AsyncClient, mint: TokenMint
) -> tuple[httpx.Response, dict[str, str]]:
    headers = bearer(mint.admin())
    body = {"slug": "p-" + secrets.token_hex(4), "name": "P", "legal_rep_jurisdiction": "IE"}
    return await client.post("/v1/registry/platforms", headers=headers, json=body), headers


async def _request(
    client: httpx.AsyncClient, mint: TokenMint
) -> tuple[httpx.Response, dict[str, str]]:
    headers = bearer(mint.authority("FR"))
    sel = factories.selector()
    case = factories.case(selectors=[sel], platform="telegram").model_dump(mode="json")
    opened = await client.post("/v1/cases", headers=headers, json=case)
    assert opened.status_code == 201, opened.text
    body = {
        "case_id": opened.json()["id"],
        "type": "production",
        "platform": "telegram",
        "categories": ["subscriber"],
        "selectors": [sel.model_dump(mode="json")],
        "legal_basis": "Art. 5 Regulation (EU) 2023/1543",
        "issuing_authority": "Parquet de Paris",
    }
    return await client.post("/v1/requests", headers=headers, json=body), headers


async def _webhook_endpoint(
    client: httpx.AsyncClient, mint: TokenMint
) -> tuple[httpx.Response, dict[str, str]]:
    headers = bearer(mint.authority("FR"))
    body = {"url": f"https://hooks-{secrets.token_hex(4)}.example.eu/caseshare"}
    return await client.post("/v1/webhooks/endpoints", headers=headers, json=body), headers


async def _jurisdiction_change(
    client: httpx.AsyncClient, mint: TokenMint
) -> tuple[httpx.Response, dict[str, str]]:
    """A change of status is only proposed (202); it stays pending, nothing is applied."""
    headers = bearer(mint.admin())
    path = "/v1/registry/jurisdictions/LI"
    return await client.patch(path, headers=headers, json={"status": "suspended"}), headers


INTAKE: dict[tuple[str, str], Call] = {
    ("POST", "/v1/cases"): _case,
    ("POST", "/v1/responses"): _response,
    ("POST", "/v1/requests"): _request,
    ("POST", "/v1/webhooks/endpoints"): _webhook_endpoint,
}
REGISTRY: dict[tuple[str, str], Call] = {
    ("POST", "/v1/registry/platforms"): _platform,
    ("PATCH", "/v1/registry/jurisdictions/{code}"): _jurisdiction_change,
}


def _creating_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every documented operation that answers 201 or 202."""
    found = set()
    for path, item in app.openapi()["paths"].items():
        for method, operation in item.items():
            if {"201", "202"} & set(operation.get("responses", {})):
                found.add((method.upper(), path))
    return found


def _documented(app: FastAPI, method: str, path: str) -> set[str]:
    return set(app.openapi()["paths"][path][method.lower()]["responses"])


@pytest.mark.parametrize("which", ["intake", "registry"])
async def test_every_location_answers_200_to_its_caller(
    which: str,
    intake_app: FastAPI,
    registry_app: FastAPI,
    intake: httpx.AsyncClient,
    registry: httpx.AsyncClient,
    mint: TokenMint,
) -> None:
    app, client, calls = (
        (intake_app, intake, INTAKE) if which == "intake" else (registry_app, registry, REGISTRY)
    )
    assert _creating_routes(app) == set(calls), "give each creating route a call above"
    for (method, path), call in calls.items():
        answer, headers = await call(client, mint)
        assert answer.status_code in (201, 202), f"{method} {path}: {answer.text}"
        assert str(answer.status_code) in _documented(app, method, path)
        location = answer.headers["location"]
        target = await client.get(location, headers=headers)
        assert target.status_code == 200, f"{method} {path} -> {location}: {target.text}"
        assert target.json()["id" if "id" in target.json() else "slug"] in location
