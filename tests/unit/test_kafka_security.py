"""The Kafka security settings and the one builder of aiokafka connection arguments."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from shared.kafka import TopicProvisioner, make_consumer, make_producer
from shared.kafka_security import ClientCredentialsTokenProvider, client_kwargs
from shared.settings import KafkaSettings
from tests.tls_certs import TestCA


def settings(**env: Any) -> KafkaSettings:
    return KafkaSettings(**{"KAFKA_BOOTSTRAP_SERVERS": "kafka-1:9093,kafka-2:9093", **env})


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    ca = TestCA.create(tmp_path_factory.mktemp("pki"))
    client = ca.issue("router", server=False)
    return {
        "KAFKA_SSL_CAFILE": ca.cert,
        "KAFKA_SSL_CERTFILE": client.cert,
        "KAFKA_SSL_KEYFILE": client.key,
    }


def test_a_bare_bootstrap_is_the_plaintext_embedded_broker() -> None:
    assert client_kwargs("127.0.0.1:9092") == {"bootstrap_servers": "127.0.0.1:9092"}


def test_plaintext_settings_add_no_tls_and_no_sasl() -> None:
    assert client_kwargs(settings()) == {
        "bootstrap_servers": "kafka-1:9093,kafka-2:9093",
        "security_protocol": "PLAINTEXT",
    }


def test_ssl_loads_the_ca_and_the_client_certificate(pki: dict[str, Path]) -> None:
    kwargs = client_kwargs(settings(KAFKA_SECURITY_PROTOCOL="SSL", **pki))
    context = kwargs["ssl_context"]
    assert kwargs["security_protocol"] == "SSL"
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [
        ((("commonName", "caseshare test CA"),),)
    ]
    assert "sasl_mechanism" not in kwargs


def test_a_client_key_that_does_not_match_is_refused(pki: dict[str, Path], tmp_path: Path) -> None:
    other = TestCA.create(tmp_path).issue("other", server=False)
    with pytest.raises(ssl.SSLError):
        client_kwargs(
            settings(KAFKA_SECURITY_PROTOCOL="SSL", **(pki | {"KAFKA_SSL_KEYFILE": other.key}))
        )


def test_scram_passes_the_user_and_password(pki: dict[str, Path]) -> None:
    kwargs = client_kwargs(
        settings(
            KAFKA_SECURITY_PROTOCOL="SASL_SSL",
            KAFKA_SSL_CAFILE=pki["KAFKA_SSL_CAFILE"],
            KAFKA_SASL_MECHANISM="SCRAM-SHA-512",
            KAFKA_SASL_USERNAME="router",
            KAFKA_SASL_PASSWORD="s3cret-s3cret",
        )
    )
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == (
        "router",
        "s3cret-s3cret",
    )
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)


def oauth_settings() -> KafkaSettings:
    return settings(
        KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        KAFKA_SASL_MECHANISM="OAUTHBEARER",
        KAFKA_OAUTH_TOKEN_ENDPOINT="https://sso.example/realms/caseshare/token",
        KAFKA_OAUTH_CLIENT_ID="caseshare-router",
        KAFKA_OAUTH_CLIENT_SECRET="a-client-secret",
    )


def test_oauthbearer_gets_a_token_provider() -> None:
    kwargs = client_kwargs(oauth_settings())
    assert kwargs["sasl_mechanism"] == "OAUTHBEARER"
    assert isinstance(kwargs["sasl_oauth_token_provider"], ClientCredentialsTokenProvider)
    assert "sasl_plain_password" not in kwargs


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KAFKA_SSL_CAFILE": "/ca.pem"}, "need KAFKA_SECURITY_PROTOCOL"),
        ({"KAFKA_SASL_MECHANISM": "SCRAM-SHA-512"}, "need KAFKA_SECURITY_PROTOCOL"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CERTFILE": "/c.pem"},
            "go together",
        ),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "required with SASL_SSL"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512"},
            "only with it",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512"},
            "KAFKA_SASL_USERNAME",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "OAUTHBEARER"},
            "KAFKA_OAUTH_TOKEN_ENDPOINT",
        ),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}, "KAFKA_SECURITY_PROTOCOL"),
    ],
)
def test_half_a_security_configuration_is_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        settings(**env)


async def test_every_client_factory_connects_with_the_settings(pki: dict[str, Path]) -> None:
    kafka = settings(KAFKA_SECURITY_PROTOCOL="SSL", **pki)
    producer = make_producer(kafka, client_id="t")
    consumer = make_consumer(kafka, "t.responses.v1", group_id="g", client_id="t")
    provisioner = TopicProvisioner(kafka, partitions=3, replication_factor=3)
    clients = [producer.client, consumer._client, provisioner._admin._client]
    for client in clients:
        assert client._security_protocol == "SSL"
        assert isinstance(client._ssl_context, ssl.SSLContext)
        assert client._bootstrap_servers == "kafka-1:9093,kafka-2:9093"
    assert provisioner._replication == 3
    await producer.stop()
    await consumer.stop()
    await provisioner.close()


def token_endpoint(calls: list[httpx.Request], lifetime: int) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(
            200, json={"access_token": f"token-{len(calls)}", "expires_in": lifetime}
        )

    return httpx.MockTransport(answer)


async def test_the_token_provider_uses_client_credentials_and_reuses_the_token() -> None:
    calls: list[httpx.Request] = []
    provider = ClientCredentialsTokenProvider(
        "https://sso.example/token",
        client_id="caseshare-router",
        client_secret="a-client-secret",
        scope="kafka",
        transport=token_endpoint(calls, lifetime=300),
    )
    assert [await provider.token() for _ in range(3)] == ["token-1"] * 3
    assert len(calls) == 1
    form = calls[0].content.decode()
    assert "grant_type=client_credentials" in form
    assert "scope=kafka" in form
    assert calls[0].headers["authorization"].startswith("Basic ")


async def test_the_token_provider_fetches_again_before_expiry() -> None:
    calls: list[httpx.Request] = []
    provider = ClientCredentialsTokenProvider(
        "https://sso.example/token",
        client_id="c",
        client_secret="s",
        transport=token_endpoint(calls, lifetime=20),  # shorter than the refresh margin
    )
    assert await provider.token() == "token-1"
    assert await provider.token() == "token-2"


async def test_the_token_provider_refuses_an_answer_without_a_token() -> None:
    provider = ClientCredentialsTokenProvider(
        "https://sso.example/token",
        client_id="c",
        client_secret="s",
        transport=httpx.MockTransport(lambda _r: httpx.Response(200, json={"error": "x"})),
    )
    with pytest.raises(ValueError, match="access_token"):
        await provider.token()
