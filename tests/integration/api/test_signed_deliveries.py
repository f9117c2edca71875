"""Authenticated deliveries: the hub signs what it seals, platforms may sign what they send.

A JWE anyone can make with a member's public key must be refused by both readers a member
uses (`caseshare inbox tail`'s reader and the example consumer); a platform-signed disclosure
verifies at the recipient, and a tampered one does not.
"""

from __future__ import annotations

import importlib.util
import json
import secrets
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from joserfc.jwk import ECKey
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from caseshare.cli import inbox_reader
from services.registry.deliveries.models import Delivery
from services.registry.evidence import keys as hub_keys
from shared import evidence, sealing
from shared.db import transaction
from shared.events import ResponseDelivered
from tests.integration.api.evidence_scene import deliver
from tests.tokens import TokenMint, bearer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "inbox_consumer_example", ROOT / "examples" / "inbox_consumer.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


EXAMPLE = _example()


def _event(delivery_id: uuid.UUID, sealed: str) -> ResponseDelivered:
    return ResponseDelivered(
        delivery_id=delivery_id,
        response_id=uuid.uuid4(),
        jurisdiction="FR",
        case_id=uuid.uuid4(),
        case_reference="REF-1",
        platform="telegram",
        handling_code="H0",
        handling_conditions=None,
        rule="named_case",
        emergency=False,
        issued_at="2026-12-01T00:00:00Z",  # type: ignore[arg-type]
        disclosure_count=1,
        recipient_kid=None,
        sealed_disclosures=sealed,
    )


def _both_readers(
    sealed: str, delivery_id: uuid.UUID, private: dict[str, Any], jwks: dict[str, Any]
) -> tuple[Any, Any]:
    """What the CLI reader and the example consumer make of one sealed delivery."""
    cli = inbox_reader.open_delivery(
        _event(delivery_id, sealed), private, Path("FR.private.jwk.json"), jwks
    )
    key = ECKey.import_key(private)
    example = EXAMPLE.open_sealed(sealed, key, EXAMPLE.public_keys(jwks), str(delivery_id))
    return cli, example


def _refused_by_both(
    sealed: str, delivery_id: uuid.UUID, private: dict[str, Any], jwks: dict[str, Any]
) -> None:
    with pytest.raises(inbox_reader.Rejected):
        inbox_reader.open_delivery(
            _event(delivery_id, sealed), private, Path("FR.private.jwk.json"), jwks
        )
    with pytest.raises(EXAMPLE.Forged):
        EXAMPLE.open_sealed(
            sealed, ECKey.import_key(private), EXAMPLE.public_keys(jwks), str(delivery_id)
        )


async def _sealed(sm: async_sessionmaker[AsyncSession], delivery_id: uuid.UUID) -> str:
    async with transaction(sm) as session:
        delivery = await session.get(Delivery, delivery_id)
        assert delivery is not None
        assert delivery.sealed_disclosures is not None
        return delivery.sealed_disclosures


async def _jwks(sm: async_sessionmaker[AsyncSession]) -> dict[str, Any]:
    async with transaction(sm) as session:
        return await hub_keys.jwks(session)


async def test_a_jwe_made_by_anyone_but_the_hub_is_rejected_by_both_readers(
    intake: httpx.AsyncClient,
    mint: TokenMint,
    sessionmaker: async_sessionmaker[AsyncSession],
    keys_dir: Path,
) -> None:
    scene = await deliver(intake, mint, sessionmaker)
    private = json.loads((keys_dir / "FR.private.jwk.json").read_text())
    public = sealing.public_from_private(private)
    jwks = await _jwks(sessionmaker)
    real = scene.deliveries["FR"]
    genuine = await _sealed(sessionmaker, real)
    cli, example = _both_readers(genuine, real, private, jwks)
    assert cli == example
    assert cli[0]["records"][0]["value"] == "203.0.113.7"

    forged_disclosures = [{"selector": {"kind": "group_id", "value": "x"}, "records": []}]
    # 1. A plain JWE for FR's public key: opens, but nobody signed it.
    _refused_by_both(sealing.seal(forged_disclosures, public), real, private, jwks)
    # 2. A JWE around a JWS by a key of the forger's own, in the hub's format.
    forger = evidence.generate_signer()
    claims = {"delivery_id": str(real), "disclosures": forged_disclosures}
    _refused_by_both(sealing.seal_signed(claims, public, forger), real, private, jwks)
    # 3. The hub's genuine signed payload for DE's delivery, replayed to FR under FR's id.
    async with transaction(sessionmaker) as session:
        signer = await hub_keys.active_signer(session)
    other = {"delivery_id": str(scene.deliveries["DE"]), "disclosures": forged_disclosures}
    _refused_by_both(sealing.seal_signed(other, public, signer), real, private, jwks)
    # 4. A genuine delivery with one byte of its ciphertext changed.
    head, rest = genuine.split(".", 1)
    flipped = rest[:40] + ("A" if rest[40] != "A" else "B") + rest[41:]
    _refused_by_both(f"{head}.{flipped}", real, private, jwks)


async def _signing_platform(registry: httpx.AsyncClient, mint: TokenMint) -> tuple[str, ECKey]:
    slug = "signer-" + secrets.token_hex(4)
    admin = bearer(mint.admin())
    created = await registry.post(
        "/v1/registry/platforms",
        headers=admin,
        json={"slug": slug, "name": "Signing platform", "legal_rep_jurisdiction": "IE"},
    )
    assert created.status_code == 201, created.text
    key = ECKey.generate_key("P-256", auto_kid=True)
    patched = await registry.patch(
        f"/v1/registry/platforms/{slug}",
        headers=admin,
        json={"signing_jwk": key.as_dict(private=False)},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["signing_jwk"]["kid"] == key.thumbprint()
    return slug, key


def _platform_signer(key: ECKey) -> evidence.Signer:
    return evidence.Signer(kid=key.thumbprint(), key=key)


async def test_a_platform_signed_disclosure_verifies_at_the_recipient_and_a_tampered_one_does_not(
    intake: httpx.AsyncClient,
    registry: httpx.AsyncClient,
    mint: TokenMint,
    sessionmaker: async_sessionmaker[AsyncSession],
    keys_dir: Path,
) -> None:
    slug, key = await _signing_platform(registry, mint)
    signer = _platform_signer(key)

    def sign(disclosures: list[Any]) -> str:
        return evidence.sign({"disclosures": disclosures}, signer, typ=evidence.PLATFORM_TYP)

    scene = await deliver(intake, mint, sessionmaker, platform=slug, sign=sign)
    private = json.loads((keys_dir / "FR.private.jwk.json").read_text())
    jwks = await _jwks(sessionmaker)
    real = scene.deliveries["FR"]
    sealed = await _sealed(sessionmaker, real)
    opened = sealing.open_verified(sealed, private, jwks, delivery_id=str(real))
    assert opened.platform_signed
    assert opened.claims["platform_jwk"]["kid"] == key.thumbprint()
    cli, example = _both_readers(sealed, real, private, jwks)
    assert cli == example == opened.disclosures

    # Tampered on the way: the hub's signature is intact, the platform's no longer covers it.
    claims = dict(opened.claims)
    claims["disclosures"] = json.loads(
        json.dumps(claims["disclosures"]).replace("203.0.113.7", "203.0.113.8")
    )
    async with transaction(sessionmaker) as session:
        hub = await hub_keys.active_signer(session)
    public = sealing.public_from_private(private)
    _refused_by_both(sealing.seal_signed(claims, public, hub), real, private, jwks)
    with pytest.raises(sealing.SealError):
        sealing.open_verified(
            sealing.seal_signed(claims, public, hub), private, jwks, delivery_id=str(real)
        )
    # A platform signature by another key fails too.
    claims = dict(opened.claims)
    claims["platform_signature"] = evidence.sign(
        {"disclosures": claims["disclosures"]},
        evidence.generate_signer(),
        typ=evidence.PLATFORM_TYP,
    )
    _refused_by_both(sealing.seal_signed(claims, public, hub), real, private, jwks)


async def test_the_hub_refuses_a_missing_wrong_or_unexpected_platform_signature(
    intake: httpx.AsyncClient,
    registry: httpx.AsyncClient,
    mint: TokenMint,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    slug, key = await _signing_platform(registry, mint)
    signer = _platform_signer(key)
    tampered = lambda d: evidence.sign(  # noqa: E731
        {"disclosures": [{**d[0], "category": "content"}]}, signer, typ=evidence.PLATFORM_TYP
    )
    stranger = lambda d: evidence.sign(  # noqa: E731
        {"disclosures": d}, evidence.generate_signer(), typ=evidence.PLATFORM_TYP
    )
    for how in (None, tampered, stranger):
        with pytest.raises(AssertionError, match="422"):
            await deliver(intake, mint, sessionmaker, platform=slug, sign=how)
    # telegram registered no key: a signature it sends anyway is refused, not ignored.
    unexpected = lambda d: evidence.sign(  # noqa: E731
        {"disclosures": d}, signer, typ=evidence.PLATFORM_TYP
    )
    with pytest.raises(AssertionError, match="422"):
        await deliver(intake, mint, sessionmaker, sign=unexpected)
