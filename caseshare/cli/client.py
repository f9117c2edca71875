"""How CLI commands talk to the hub: where it is, how they get tokens, and how failures read.

Every command fails the same way: a `CliError` carries a one-line message and one of the
documented exit codes, and the root command group turns it into a red line on stderr instead of
a traceback. HTTP problems (RFC 9457 problem+json) become "<title> (<status>): <detail>" plus
the field errors, so a refused request reads like the server meant it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import ValidationError

from shared.kafka_security import KafkaTarget
from shared.settings import KafkaSettings

Service = Literal["intake", "registry", "issuer"]
TIMEOUT = httpx.Timeout(15.0, connect=5.0)


class ExitCode(IntEnum):
    OK = 0
    REFUSED = 1  # the server answered 4xx: the request was understood and refused
    USAGE = 2  # bad arguments or local configuration (missing key or state files)
    UNREACHABLE = 3  # a service or the broker could not be reached
    UNEXPECTED = 4  # a 5xx, an answer we cannot read, or a bug


EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 refused by the server (4xx); 2 usage or local configuration; "
    "3 a service or the broker is unreachable; 4 unexpected (5xx or a bug)."
)


class CliError(Exception):
    """An expected failure: shown as one line on stderr, then the process exits with `code`."""

    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class Settings:
    """The global options: where each part of the hub is, and where local state lives."""

    intake_url: str = "http://127.0.0.1:8000"
    registry_url: str = "http://127.0.0.1:8001"
    issuer: str = "http://127.0.0.1:8003"
    state_dir: Path = Path(".state")
    bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = "caseshare"

    def url(self, service: Service) -> str:
        return {"intake": self.intake_url, "registry": self.registry_url, "issuer": self.issuer}[
            service
        ].rstrip("/")

    def key_file(self, jurisdiction: str) -> Path:
        return self.state_dir / "keys" / f"{jurisdiction.upper()}.private.jwk.json"

    def inbox_topic(self, jurisdiction: str) -> str:
        return f"{self.topic_prefix}.inbox.{jurisdiction.upper()}.v1"

    def kafka(self) -> KafkaTarget:
        """The broker to connect to, with the TLS and SASL settings of the environment
        (KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*, KAFKA_SSL_*, KAFKA_OAUTH_*) that the services
        read too, so a member's integrator reaches a secured cluster with the same variables.
        Read when a command opens a client, so commands without one never fail on them."""
        try:
            security = KafkaSettings(KAFKA_BOOTSTRAP_SERVERS=self.bootstrap)
        except ValidationError as exc:
            problems = "; ".join(str(e["msg"]) for e in exc.errors())
            raise CliError(f"Kafka settings: {problems}", ExitCode.USAGE) from None
        if security.kafka_security_protocol == "PLAINTEXT":
            return self.bootstrap
        return security


def dev_secret(state_dir: Path, client_id: str) -> str:
    """The secret of a dev client that `caseshare up` created."""
    secrets_file = state_dir / "dev-clients.json"
    try:
        secrets: dict[str, str] = json.loads(secrets_file.read_text())
    except FileNotFoundError:
        raise CliError(
            f"no dev clients at {secrets_file}: is `make run` running (and --state-dir right)?",
            ExitCode.USAGE,
        ) from None
    except ValueError:
        raise CliError(f"{secrets_file} is not valid JSON", ExitCode.USAGE) from None
    if client_id not in secrets:
        raise CliError(f"unknown dev client {client_id!r}; see {secrets_file}", ExitCode.USAGE)
    return secrets[client_id]


async def fetch_token(settings: Settings, client_id: str, *, scope: str | None = None) -> str:
    """A client-credentials token from the issuer (client_secret_basic), as `token` prints."""
    secret = dev_secret(settings.state_dir, client_id)
    form = {"grant_type": "client_credentials"}
    if scope:
        form["scope"] = scope
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        try:
            answer = await http.post(
                f"{settings.url('issuer')}/token", data=form, auth=(client_id, secret)
            )
        except httpx.TransportError as exc:
            raise unreachable("issuer", settings.url("issuer"), exc) from None
    if answer.status_code != 200:
        raise problem_error(answer, what=f"token request for {client_id}")
    token = answer.json().get("access_token")
    if not isinstance(token, str):
        raise CliError("the issuer answered without an access_token", ExitCode.UNEXPECTED)
    return token


def unreachable(service: str, url: str, exc: Exception) -> CliError:
    hint = "is the broker up" if service == "broker" else "is `make run` running"
    return CliError(
        f"cannot reach {service} at {url} ({type(exc).__name__}): {hint}?", ExitCode.UNREACHABLE
    )


def problem_error(answer: httpx.Response, *, what: str) -> CliError:
    """Turn a non-2xx answer (problem+json or not) into a readable CliError."""
    try:
        body = answer.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and ("title" in body or "detail" in body):
        text = f"{body.get('title', 'refused')} ({answer.status_code}): {body.get('detail', '')}"
        errors = body.get("errors") or []
        details = [
            f"{'.'.join(str(p) for p in e.get('loc', []))}: {e.get('msg', '')}"
            for e in errors
            if isinstance(e, dict)
        ]
        if details:
            text += "\n  " + "\n  ".join(details)
    elif isinstance(body, dict) and "error" in body:  # OAuth errors (RFC 6749 section 5.2)
        text = f"{body['error']} ({answer.status_code}): {body.get('error_description', '')}"
    else:
        text = f"HTTP {answer.status_code}: {answer.text[:200]}"
    code = ExitCode.REFUSED if 400 <= answer.status_code < 500 else ExitCode.UNEXPECTED
    prefix = f"{what} refused" if code is ExitCode.REFUSED else what
    return CliError(f"{prefix}: {text}", code)


@dataclass
class Api:
    """An authenticated caller of intake and the registry, acting as one dev client."""

    settings: Settings
    client_id: str
    _token: str | None = field(default=None, repr=False)
    _token_at: float = 0.0

    async def token(self, *, fresh: bool = False) -> str:
        # Dev tokens live five minutes; renew well before that for long-running commands.
        if fresh or self._token is None or time.monotonic() - self._token_at > 120:
            self._token = await fetch_token(self.settings, self.client_id)
            self._token_at = time.monotonic()
        return self._token

    async def call(
        self,
        method: str,
        service: Service,
        path: str,
        *,
        what: str,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request; retries once with a fresh token on 401, raises CliError otherwise."""
        base = self.settings.url(service)
        params = {k: v for k, v in (params or {}).items() if v is not None}
        async with httpx.AsyncClient(base_url=base, timeout=TIMEOUT) as http:
            for fresh in (False, True):
                auth = {"Authorization": f"Bearer {await self.token(fresh=fresh)}"}
                try:
                    answer = await http.request(
                        method, path, json=json_body, params=params, headers=auth | (headers or {})
                    )
                except httpx.TransportError as exc:
                    raise unreachable(service, base, exc) from None
                if answer.status_code != 401:
                    break
        if answer.is_success:
            return answer
        raise problem_error(answer, what=what)

    async def get(self, service: Service, path: str, *, what: str, **params: Any) -> Any:
        return (await self.call("GET", service, path, what=what, params=params)).json()
