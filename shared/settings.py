"""Settings pieces that each service composes into its own pydantic-settings class.

Every address is an environment variable, so the same code runs against the embedded stack,
a managed PostgreSQL, an Apache Kafka cluster and any OIDC provider.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
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
