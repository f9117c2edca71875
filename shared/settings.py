"""Settings pieces that each service composes into its own pydantic-settings class.

Every address is an environment variable, so the same code runs against the embedded stack,
a managed PostgreSQL, an Apache Kafka cluster and any OIDC provider.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_STATE_DIR = Path(".state")
PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "placeholder"}


class CommonSettings(BaseSettings):
    """Values every process needs: where the state lives and how to log."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    state_dir: Path = Field(default=DEFAULT_STATE_DIR, alias="CASESHARE_STATE_DIR")
    log_format: str = Field(default="json", alias="LOG_FORMAT", pattern="^(json|text)$")
    log_level: str = Field(default="INFO", alias="LOG_LEVEL")
    # Comma-separated proxies (addresses or networks) whose X-Forwarded-For and
    # X-Forwarded-Proto are believed. Empty: the connection's peer is the client, whatever
    # headers it sends, so no one can pose as another address to dodge a per-peer limit.
    forwarded_allow_ips: str = Field(default="", alias="FORWARDED_ALLOW_IPS")
    # OpenTelemetry collector (OTLP over HTTP, e.g. http://otel-collector:4318); tracing is
    # off, and costs nothing, while it is unset.
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, alias="OTEL_EXPORTER_OTLP_ENDPOINT"
    )


class DatabaseSettings(BaseSettings):
    """PostgreSQL connection; the embedded default listens on 127.0.0.1:54329."""

    model_config = SettingsConfigDict(extra="ignore")

    database_url: str = Field(
        default="postgresql+asyncpg://caseshare@127.0.0.1:54329/caseshare", alias="DATABASE_URL"
    )
    database_pool_size: int = Field(default=10, alias="DATABASE_POOL_SIZE", ge=1, le=100)


class KafkaSettings(BaseSettings):
    """Kafka bootstrap servers and the topic namespace (tests isolate by prefix)."""

    model_config = SettingsConfigDict(extra="ignore")

    kafka_bootstrap_servers: str = Field(default="127.0.0.1:9092", alias="KAFKA_BOOTSTRAP_SERVERS")
    topic_prefix: str = Field(
        default="caseshare", alias="KAFKA_TOPIC_PREFIX", pattern=r"^[a-z0-9][a-z0-9_-]*$"
    )
    # Topics the services create themselves; a production cluster wants 3 (with
    # min.insync.replicas=2), the single embedded broker can hold only 1.
    kafka_replication_factor: int = Field(default=1, alias="KAFKA_REPLICATION_FACTOR", ge=1)
    # How clients authenticate; the embedded broker speaks PLAINTEXT only (BROKER.md).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_SSL"] = Field(
        default="PLAINTEXT", alias="KAFKA_SECURITY_PROTOCOL"
    )
    kafka_ssl_cafile: Path | None = Field(default=None, alias="KAFKA_SSL_CAFILE")
    kafka_ssl_certfile: Path | None = Field(default=None, alias="KAFKA_SSL_CERTFILE")
    kafka_ssl_keyfile: Path | None = Field(default=None, alias="KAFKA_SSL_KEYFILE")
    kafka_ssl_key_password: SecretStr | None = Field(default=None, alias="KAFKA_SSL_KEY_PASSWORD")
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "OAUTHBEARER"] | None = Field(
        default=None, alias="KAFKA_SASL_MECHANISM"
    )
    kafka_sasl_username: str | None = Field(default=None, alias="KAFKA_SASL_USERNAME")
    kafka_sasl_password: SecretStr | None = Field(default=None, alias="KAFKA_SASL_PASSWORD")
    # OAUTHBEARER: client credentials at the same identity provider that issues API tokens.
    kafka_oauth_token_endpoint: str | None = Field(default=None, alias="KAFKA_OAUTH_TOKEN_ENDPOINT")
    kafka_oauth_client_id: str | None = Field(default=None, alias="KAFKA_OAUTH_CLIENT_ID")
    kafka_oauth_client_secret: SecretStr | None = Field(
        default=None, alias="KAFKA_OAUTH_CLIENT_SECRET"
    )
    kafka_oauth_scope: str | None = Field(default=None, alias="KAFKA_OAUTH_SCOPE")

    @model_validator(mode="after")
    def _security_is_complete(self) -> KafkaSettings:
        """Refuse half a configuration: it would fail at the first connect, or worse, fall
        back to cleartext while the operator believes the link is protected."""
        problem = kafka_security_problem(self)
        if problem is not None:
            raise ValueError(problem)
        return self


def kafka_security_problem(kafka: KafkaSettings) -> str | None:
    """What is missing or contradictory in the Kafka security settings, if anything."""
    tls = kafka.kafka_security_protocol != "PLAINTEXT"
    files = (kafka.kafka_ssl_cafile, kafka.kafka_ssl_certfile, kafka.kafka_ssl_keyfile)
    if not tls and (any(files) or kafka.kafka_sasl_mechanism):
        return "KAFKA_SSL_* and KAFKA_SASL_MECHANISM need KAFKA_SECURITY_PROTOCOL SSL or SASL_SSL"
    if (kafka.kafka_ssl_certfile is None) != (kafka.kafka_ssl_keyfile is None):
        return "KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE go together"
    sasl = kafka.kafka_security_protocol == "SASL_SSL"
    if sasl != (kafka.kafka_sasl_mechanism is not None):
        return "KAFKA_SASL_MECHANISM is required with SASL_SSL, and only with it"
    if kafka.kafka_sasl_mechanism == "SCRAM-SHA-512" and not (
        kafka.kafka_sasl_username and kafka.kafka_sasl_password
    ):
        return "SCRAM-SHA-512 needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
    if kafka.kafka_sasl_mechanism == "OAUTHBEARER" and not (
        kafka.kafka_oauth_token_endpoint
        and kafka.kafka_oauth_client_id
        and kafka.kafka_oauth_client_secret
    ):
        return (
            "OAUTHBEARER needs KAFKA_OAUTH_TOKEN_ENDPOINT, KAFKA_OAUTH_CLIENT_ID"
            " and KAFKA_OAUTH_CLIENT_SECRET"
        )
    return None


class OAuthSettings(BaseSettings):
    """The resource-server side: which issuer to trust and which audience tokens must carry."""

    model_config = SettingsConfigDict(extra="ignore")

    oauth_issuer: str = Field(default="http://127.0.0.1:8003", alias="OAUTH_ISSUER")
    oauth_audience: str = Field(default="caseshare", alias="OAUTH_AUDIENCE")
    oauth_leeway_seconds: int = Field(default=30, alias="OAUTH_LEEWAY_SECONDS", ge=0, le=120)
    oauth_jwks_ttl_seconds: int = Field(default=300, alias="OAUTH_JWKS_TTL_SECONDS", ge=5)
    # Tokens whose exp - iat exceeds this are refused, however validly signed.
    oauth_max_token_lifetime_seconds: int = Field(
        default=3600, alias="OAUTH_MAX_TOKEN_LIFETIME_SECONDS", ge=60, le=86400
    )
    # Validated tokens remembered (by hash, until their exp) per process; 0 checks every time.
    oauth_token_cache_size: int = Field(
        default=4096, alias="OAUTH_TOKEN_CACHE_SIZE", ge=0, le=1_000_000
    )


class SelectorSettings(BaseSettings):
    """The server secret that keys selector hashes; placeholders are refused."""

    model_config = SettingsConfigDict(extra="ignore")

    selector_hmac_key: SecretStr = Field(alias="SELECTOR_HMAC_KEY")

    @field_validator("selector_hmac_key")
    @classmethod
    def _refuse_placeholder(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value()
        if raw.lower() in PLACEHOLDER_SECRETS or len(raw) < 32:
            raise ValueError("SELECTOR_HMAC_KEY must be a random value of at least 32 characters")
        return value
