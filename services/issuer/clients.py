"""Registering OAuth clients, and the development clients `make run` needs to be usable.

Secrets are returned once and stored only as scrypt hashes. Development secrets are also kept in
a 0600 JSON file so that restarts reuse them instead of minting new ones.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy.ext.asyncio import AsyncSession

from services.issuer import repository
from services.issuer.models import ClientKind, OAuthClient
from shared.auth.scopes import Scope
from shared.files import write_private

logger = logging.getLogger(__name__)

DEV_SCOPES: dict[ClientKind, tuple[Scope, ...]] = {
    ClientKind.AUTHORITY: (Scope.CASES_WRITE, Scope.CASES_READ, Scope.INBOX_READ),
    ClientKind.PLATFORM: (Scope.RESPONSES_WRITE,),
    ClientKind.COORDINATOR: (Scope.FANOUT_READ, Scope.CASES_READ),
    ClientKind.ADMIN: (Scope.REGISTRY_ADMIN, Scope.FANOUT_READ),
    ClientKind.PUBLIC: (Scope.FANOUT_READ,),
}
DASHBOARD_CLIENT_ID = "dashboard"

# About 50 ms and 16 MiB per hash: slow enough to blunt guessing a leaked table.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_JURISDICTION = re.compile(r"^[A-Z]{2}$")
_PLATFORM = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def hash_secret(secret: str) -> str:
    """`scrypt$n$r$p$salt$hash` with a fresh salt per secret."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        secret.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32
    )
    encoded = [base64.b64encode(part).decode() for part in (salt, digest)]
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${encoded[0]}${encoded[1]}"


def verify_secret(secret: str, encoded: str) -> bool:
    """Constant-time check of `secret` against a `hash_secret` value."""
    try:
        scheme, n, r, p, salt, expected = encoded.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(
            secret.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(base64.b64decode(expected)),
        )
    except ValueError:
        return False
    return hmac.compare_digest(digest, base64.b64decode(expected))


async def create_client(
    session: AsyncSession,
    *,
    client_id: str,
    kind: ClientKind | str,
    jurisdiction: str | None = None,
    platform: str | None = None,
    scopes: Iterable[Scope | str] | None = None,
    public_jwks: Mapping[str, Any] | None = None,
    secret: str | None = None,
    redirect_uris: Sequence[str] = (),
) -> str | None:
    """Register a client; returns its new secret once, or None for a key-only or public client.

    A client that registers `public_jwks` authenticates with `private_key_jwt` only, unless a
    `secret` is passed too (used to restore a recorded development secret). A public client has
    no credential at all and must register the exact URIs it may be redirected to.
    """
    kind = ClientKind(kind)
    allowed = [str(Scope(scope)) for scope in (scopes if scopes is not None else DEV_SCOPES[kind])]
    if jurisdiction is not None:
        jurisdiction = jurisdiction.upper()
    _check_identity(kind, jurisdiction, platform)
    _check_public(kind, secret=secret, public_jwks=public_jwks, redirect_uris=redirect_uris)
    jwks = _public_jwks(public_jwks) if public_jwks is not None else None
    if secret is None and jwks is None and kind is not ClientKind.PUBLIC:
        secret = secrets.token_urlsafe(32)
    await repository.create_client(
        session,
        client=OAuthClient(
            client_id=client_id,
            kind=kind,
            secret_hash=hash_secret(secret) if secret else None,
            jwks=jwks,
            allowed_scopes=allowed,
            jurisdiction=jurisdiction,
            platform=platform,
            disabled=False,
            redirect_uris=list(redirect_uris),
        ),
    )
    logger.info("registered client", extra={"client_id": client_id, "kind": str(kind)})
    return secret


async def ensure_dev_clients(
    session: AsyncSession,
    *,
    jurisdictions: Iterable[str],
    platforms: Iterable[str],
    secrets_file: Path,
) -> dict[str, str]:
    """One client per jurisdiction and platform, plus `coordinator` and `admin`; idempotent.

    Returns every development client's secret. Secrets already in `secrets_file` are reused; a
    client missing from the database is created with its recorded secret, and one whose secret
    was never recorded gets a new one.
    """
    wanted = _dev_clients(jurisdictions, platforms)
    recorded = _read_secrets(secrets_file)
    existing = await repository.get_existing_client_ids(session, client_ids=wanted)
    result: dict[str, str] = {}
    for client_id, (kind, jurisdiction, platform) in wanted.items():
        secret = recorded.get(client_id)
        if client_id in existing and secret:
            result[client_id] = secret
        elif client_id in existing:
            result[client_id] = secrets.token_urlsafe(32)
            await repository.update_secret_hash(
                session, client_id=client_id, secret_hash=hash_secret(result[client_id])
            )
        else:
            created = await create_client(
                session,
                client_id=client_id,
                kind=kind,
                jurisdiction=jurisdiction,
                platform=platform,
                secret=secret,
            )
            assert created is not None
            result[client_id] = created
    if any(recorded.get(client_id) != secret for client_id, secret in result.items()):
        _write_secrets(secrets_file, {**recorded, **result})
    else:
        _restrict_to_owner(secrets_file)
    return result


def _dev_clients(
    jurisdictions: Iterable[str], platforms: Iterable[str]
) -> dict[str, tuple[ClientKind, str | None, str | None]]:
    wanted: dict[str, tuple[ClientKind, str | None, str | None]] = {}
    for iso in jurisdictions:
        wanted[f"authority-{iso.lower()}"] = (ClientKind.AUTHORITY, iso.upper(), None)
    for slug in platforms:
        wanted[f"platform-{slug}"] = (ClientKind.PLATFORM, None, slug)
    wanted["coordinator"] = (ClientKind.COORDINATOR, None, None)
    wanted["admin"] = (ClientKind.ADMIN, None, None)
    return wanted


def _check_identity(kind: ClientKind, jurisdiction: str | None, platform: str | None) -> None:
    """Mirror the table's checks so a caller gets a clear error instead of an IntegrityError."""
    if (kind is ClientKind.AUTHORITY) != (jurisdiction is not None):
        raise ValueError("authority clients, and only they, carry a jurisdiction")
    if (kind is ClientKind.PLATFORM) != (platform is not None):
        raise ValueError("platform clients, and only they, carry a platform")
    if jurisdiction is not None and not _JURISDICTION.match(jurisdiction):
        raise ValueError("jurisdiction must be an ISO 3166-1 alpha-2 code")
    if platform is not None and not _PLATFORM.match(platform):
        raise ValueError("platform must be a lower-case slug")


def _check_public(
    kind: ClientKind,
    *,
    secret: str | None,
    public_jwks: Mapping[str, Any] | None,
    redirect_uris: Sequence[str],
) -> None:
    if kind is not ClientKind.PUBLIC:
        if redirect_uris:
            raise ValueError("only public clients register redirect URIs")
        return
    if secret is not None or public_jwks is not None:
        raise ValueError("a public client holds no secret and no keys")
    if not redirect_uris:
        raise ValueError("a public client needs at least one redirect URI")


async def ensure_dashboard_client(session: AsyncSession, *, redirect_uris: Sequence[str]) -> None:
    """The coordinator dashboard's public client, redirecting only to `redirect_uris`.

    Idempotent; the URIs are replaced on every call because the registry's port may change.
    """
    if await repository.get_existing_client_ids(session, client_ids=[DASHBOARD_CLIENT_ID]):
        await repository.update_redirect_uris(
            session, client_id=DASHBOARD_CLIENT_ID, redirect_uris=list(redirect_uris)
        )
        return
    await create_client(
        session,
        client_id=DASHBOARD_CLIENT_ID,
        kind=ClientKind.PUBLIC,
        redirect_uris=redirect_uris,
    )


def _public_jwks(document: Mapping[str, Any]) -> dict[str, Any]:
    """Accept only a parseable set of public keys; a private key here would be a leak."""
    try:
        keys = KeySet.import_key_set(dict(document))  # type: ignore[arg-type]
    except (JoseError, KeyError, TypeError, ValueError) as exc:
        raise ValueError("public_jwks is not a usable JWK set") from exc
    if any(key.is_private for key in keys):
        raise ValueError("public_jwks must not contain private keys")
    return dict(keys.as_dict(private=False))


def _read_secrets(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    return {str(key): str(value) for key, value in data.items()}


def _restrict_to_owner(path: Path) -> None:
    path.chmod(0o600)


def _write_secrets(path: Path, data: Mapping[str, str]) -> None:
    write_private(path, json.dumps(dict(sorted(data.items())), indent=2))
