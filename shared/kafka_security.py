"""How every Kafka client of the hub connects: bootstrap servers, TLS and SASL, in one place.

Producers, consumers and admin clients all take `**client_kwargs(...)`, so a cluster that needs
mutual TLS, SCRAM or OAUTHBEARER is configured once, by environment, for every process. A plain
bootstrap string means the embedded broker, which speaks PLAINTEXT only (BROKER.md).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from aiokafka.abc import AbstractTokenProvider
from aiokafka.helpers import create_ssl_context

from shared.settings import KafkaSettings

# Fetch a new token this long before the current one expires, so no connect races the expiry.
TOKEN_REFRESH_MARGIN_SECONDS = 30.0
TOKEN_TIMEOUT_SECONDS = 10.0

KafkaTarget = KafkaSettings | str


def client_kwargs(target: KafkaTarget) -> dict[str, Any]:
    """The connection keyword arguments for AIOKafkaProducer, AIOKafkaConsumer and
    AIOKafkaAdminClient: `bootstrap_servers` plus whatever security the settings ask for."""
    if isinstance(target, str):
        return {"bootstrap_servers": target}
    kwargs: dict[str, Any] = {
        "bootstrap_servers": target.kafka_bootstrap_servers,
        "security_protocol": target.kafka_security_protocol,
    }
    if target.kafka_security_protocol == "PLAINTEXT":
        return kwargs
    password = target.kafka_ssl_key_password
    kwargs["ssl_context"] = create_ssl_context(
        cafile=target.kafka_ssl_cafile,
        certfile=target.kafka_ssl_certfile,
        keyfile=target.kafka_ssl_keyfile,
        password=password.get_secret_value() if password else None,
    )
    mechanism = target.kafka_sasl_mechanism
    if mechanism == "SCRAM-SHA-512":
        secret = target.kafka_sasl_password
        kwargs["sasl_mechanism"] = mechanism
        kwargs["sasl_plain_username"] = target.kafka_sasl_username
        kwargs["sasl_plain_password"] = secret.get_secret_value() if secret else None
    elif mechanism == "OAUTHBEARER":
        kwargs["sasl_mechanism"] = mechanism
        kwargs["sasl_oauth_token_provider"] = token_provider(target)
    return kwargs


def token_provider(kafka: KafkaSettings) -> ClientCredentialsTokenProvider:
    """An OAUTHBEARER token source for the client credentials in `kafka`."""
    endpoint, client_id = kafka.kafka_oauth_token_endpoint, kafka.kafka_oauth_client_id
    secret = kafka.kafka_oauth_client_secret
    if not (endpoint and client_id and secret):
        raise ValueError("OAUTHBEARER needs a token endpoint, a client id and a client secret")
    return ClientCredentialsTokenProvider(
        endpoint,
        client_id=client_id,
        client_secret=secret.get_secret_value(),
        scope=kafka.kafka_oauth_scope,
    )


class ClientCredentialsTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    """Access tokens for the broker from the identity provider that issues the API's tokens
    (client credentials, `client_secret_basic`), reused until shortly before they expire."""

    def __init__(
        self,
        endpoint: str,
        *,
        client_id: str,
        client_secret: str,
        scope: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._endpoint, self._scope, self._transport = endpoint, scope, transport
        self._auth = httpx.BasicAuth(client_id, client_secret)
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        """The current token, fetched again only when it is about to expire."""
        async with self._lock:
            if self._token is None or time.monotonic() >= self._expires_at:
                self._token, lifetime = await self._fetch()
                self._expires_at = time.monotonic() + max(
                    lifetime - TOKEN_REFRESH_MARGIN_SECONDS, 0.0
                )
            return self._token

    async def _fetch(self) -> tuple[str, float]:
        form = {"grant_type": "client_credentials"}
        if self._scope:
            form["scope"] = self._scope
        async with httpx.AsyncClient(
            transport=self._transport, timeout=TOKEN_TIMEOUT_SECONDS
        ) as http:
            answer = await http.post(self._endpoint, data=form, auth=self._auth)
        answer.raise_for_status()
        body = answer.json()
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise ValueError("the token endpoint answered without an access_token")
        return token, float(body.get("expires_in", 60))
