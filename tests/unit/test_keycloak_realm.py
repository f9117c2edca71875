"""The shipped Keycloak realm issues tokens our resource servers accept, for the same clients.

Checked structurally: ES256 keys and signatures, the at+jwt header type, the audience, the
identity claims, confidential service-account clients, and the scopes of the embedded issuer's
development clients, so the two issuers cannot drift apart unnoticed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from services.issuer.clients import DEV_SCOPES
from services.issuer.models import ClientKind
from shared.auth.scopes import Scope
from shared.auth.validation import ALLOWED_ALGORITHMS

REALM = Path(__file__).parents[2] / "deploy" / "keycloak" / "realm-export.json"
KINDS = {
    "authority-fr": ClientKind.AUTHORITY,
    "authority-de": ClientKind.AUTHORITY,
    "platform-telegram": ClientKind.PLATFORM,
    "coordinator": ClientKind.COORDINATOR,
    "admin": ClientKind.ADMIN,
}


@pytest.fixture(scope="module")
def realm() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(REALM.read_text())
    return data


def _clients(realm: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {client["clientId"]: client for client in realm["clients"]}


def _hardcoded(client: dict[str, Any]) -> dict[str, str]:
    return {
        m["config"]["claim.name"]: m["config"]["claim.value"]
        for m in client.get("protocolMappers", [])
        if m["protocolMapper"] == "oidc-hardcoded-claim-mapper"
        and m["config"]["access.token.claim"] == "true"
    }


def test_realm_signs_es256_with_a_generated_p256_key(realm: dict[str, Any]) -> None:
    assert realm["realm"] == "caseshare"
    assert realm["defaultSignatureAlgorithm"] == "ES256" in ALLOWED_ALGORITHMS
    providers = realm["components"]["org.keycloak.keys.KeyProvider"]
    ecdsa = [p for p in providers if p["providerId"] == "ecdsa-generated"]
    assert ecdsa
    assert ecdsa[0]["config"]["ecdsaEllipticCurveKey"] == ["P-256"]
    assert realm["accessTokenLifespan"] <= 300
    assert realm["sslRequired"] == "all"


def test_the_six_scopes_are_client_scopes_put_in_the_token(realm: dict[str, Any]) -> None:
    scopes = {s["name"]: s for s in realm["clientScopes"]}
    for scope in Scope:
        assert scopes[str(scope)]["attributes"]["include.in.token.scope"] == "true"


def test_an_audience_mapper_adds_caseshare_for_every_client(realm: dict[str, Any]) -> None:
    scopes = {s["name"]: s for s in realm["clientScopes"]}
    mappers = scopes["caseshare-audience"]["protocolMappers"]
    audience = [m for m in mappers if m["protocolMapper"] == "oidc-audience-mapper"]
    assert audience[0]["config"]["included.custom.audience"] == "caseshare"
    assert audience[0]["config"]["access.token.claim"] == "true"
    for client in realm["clients"]:
        assert "caseshare-audience" in client["defaultClientScopes"]


@pytest.mark.parametrize("client_id", sorted(KINDS))
def test_each_client_is_a_confidential_service_account_issuing_at_jwt(
    realm: dict[str, Any], client_id: str
) -> None:
    client = _clients(realm)[client_id]
    assert client["publicClient"] is False
    assert client["serviceAccountsEnabled"] is True
    assert client["standardFlowEnabled"] is False
    assert client["directAccessGrantsEnabled"] is False
    assert "secret" not in client  # Keycloak generates it; none ships in the repository
    attributes = client["attributes"]
    assert attributes["access.token.header.type.rfc9068"] == "true"
    assert attributes["access.token.signed.response.alg"] == "ES256"


@pytest.mark.parametrize("client_id", sorted(KINDS))
def test_each_client_carries_its_identity_and_the_dev_clients_scopes(
    realm: dict[str, Any], client_id: str
) -> None:
    client = _clients(realm)[client_id]
    kind = KINDS[client_id]
    claims = _hardcoded(client)
    assert claims["client_id"] == client_id  # the validator requires the RFC 9068 claim
    if kind is ClientKind.AUTHORITY:
        assert claims["jurisdiction"] == client_id.removeprefix("authority-").upper()
    else:
        assert "jurisdiction" not in claims
    if kind is ClientKind.PLATFORM:
        assert claims["platform"] == client_id.removeprefix("platform-")
    else:
        assert "platform" not in claims
    granted = set(client["defaultClientScopes"]) & {str(s) for s in Scope}
    assert granted == {str(s) for s in DEV_SCOPES[kind]}
