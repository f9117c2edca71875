"""People who sign in at the embedded issuer: development accounts for the coordinator dashboard.

Passwords are stored only as scrypt hashes (the same scheme as client secrets). `caseshare up`
creates one coordinator account with a random password and keeps that password in a 0600 JSON
file, so restarts reuse it. Production users live in the organisation's identity provider.
"""

from __future__ import annotations

import functools
import json
import logging
import secrets
import uuid
from collections.abc import Iterable
from pathlib import Path

import anyio.to_thread
from sqlalchemy.ext.asyncio import AsyncSession

from services.issuer import repository
from services.issuer.clients import hash_secret, verify_secret
from services.issuer.models import DevUser
from shared.auth.scopes import Scope
from shared.files import write_private

logger = logging.getLogger(__name__)

DEV_COORDINATOR = "coordinator@caseshare.test"
DEV_USER_SCOPES: tuple[Scope, ...] = (Scope.FANOUT_READ,)


@functools.cache
def _dummy_hash() -> str:
    """Checked when the email is unknown, so a miss costs as much as a wrong password."""
    return hash_secret(secrets.token_urlsafe(16))


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    password: str,
    scopes: Iterable[Scope | str] = DEV_USER_SCOPES,
) -> uuid.UUID:
    """Add an account; the email is stored lower-cased."""
    user = DevUser(
        id=uuid.uuid4(),
        email=email.strip().lower(),
        password_hash=hash_secret(password),
        allowed_scopes=[str(Scope(scope)) for scope in scopes],
        disabled=False,
    )
    await repository.create_user(session, user=user)
    logger.info("created user", extra={"user_id": str(user.id)})
    return user.id


async def authenticate(session: AsyncSession, *, email: str, password: str) -> DevUser | None:
    """The enabled user these credentials belong to, or None; as slow for any kind of miss.

    The scrypt check runs in a worker thread: it takes tens of milliseconds of CPU.
    """
    user = await repository.get_user_by_email(session, email=email.strip().lower())
    encoded = user.password_hash if user is not None else _dummy_hash()
    matches = await anyio.to_thread.run_sync(verify_secret, password, encoded)
    return user if user is not None and matches else None


async def ensure_dev_users(session: AsyncSession, *, users_file: Path) -> dict[str, str]:
    """The development coordinator account; returns `{email: password}`. Idempotent.

    A password recorded in `users_file` is reused; an account whose password was never recorded
    gets a new one, written back to the file.
    """
    recorded = _read(users_file)
    password = recorded.get(DEV_COORDINATOR)
    existing = await repository.get_user_by_email(session, email=DEV_COORDINATOR)
    if existing is None:
        password = password or secrets.token_urlsafe(18)
        await create_user(session, email=DEV_COORDINATOR, password=password)
    elif password is None:
        password = secrets.token_urlsafe(18)
        await repository.update_password_hash(
            session, email=DEV_COORDINATOR, password_hash=hash_secret(password)
        )
    if recorded.get(DEV_COORDINATOR) != password:
        _write(users_file, {**recorded, DEV_COORDINATOR: password})
    return {DEV_COORDINATOR: password}


def _read(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    return {str(k): str(v) for k, v in json.loads(path.read_text()).items()}


def _write(path: Path, data: dict[str, str]) -> None:
    write_private(path, json.dumps(dict(sorted(data.items())), indent=2))
