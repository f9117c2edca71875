"""Settings of the embedded authorization server, built only in `__main__` or a test."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from shared.keywrap import KeyEncryptionSettings
from shared.settings import CommonSettings, DatabaseSettings, OAuthSettings

MAX_TOKEN_LIFETIME_SECONDS = 300
_OAUTH_DEFAULTS = OAuthSettings.model_fields


class IssuerSettings(CommonSettings, DatabaseSettings, KeyEncryptionSettings):
    """Where the issuer listens, who it says it is, and how long what it signs stays valid."""

    model_config = SettingsConfigDict(extra="ignore")

    # The same variables the resource servers read, so both sides agree by construction.
    issuer_url: str = Field(default=_OAUTH_DEFAULTS["oauth_issuer"].default, alias="OAUTH_ISSUER")
    audience: str = Field(default=_OAUTH_DEFAULTS["oauth_audience"].default, alias="OAUTH_AUDIENCE")
    host: str = Field(default="127.0.0.1", alias="ISSUER_HOST")
    port: int = Field(default=8003, alias="ISSUER_PORT", ge=1, le=65535)
    token_lifetime_seconds: int = Field(
        default=MAX_TOKEN_LIFETIME_SECONDS,
        alias="ISSUER_TOKEN_LIFETIME_SECONDS",
        ge=30,
        le=MAX_TOKEN_LIFETIME_SECONDS,
    )
    # A retired key stays published this long, so tokens it signed live out their lifetime.
    key_grace_seconds: int = Field(default=900, alias="ISSUER_KEY_GRACE_SECONDS", ge=0)
    token_rate_per_second: float = Field(default=20.0, alias="ISSUER_TOKEN_RATE", gt=0)
    token_rate_burst: int = Field(default=40, alias="ISSUER_TOKEN_BURST", ge=1)
    # Failed authentications a peer may make, per client (or account) and in all, before each
    # further one doubles its wait; a success from the same peer clears the per-client count.
    failed_auth_free_per_client: int = Field(default=5, alias="ISSUER_FAILED_AUTH_FREE", ge=1)
    failed_auth_free_per_peer: int = Field(
        default=20, alias="ISSUER_FAILED_AUTH_FREE_PER_PEER", ge=1
    )
    # Token and sign-in requests are a few hundred bytes; nothing larger is read into memory.
    max_body_bytes: int = Field(default=64 * 1024, alias="ISSUER_MAX_BODY_BYTES", ge=1024)

    @model_validator(mode="after")
    def _grace_covers_token_lifetime(self) -> IssuerSettings:
        if self.key_grace_seconds < self.token_lifetime_seconds:
            raise ValueError("ISSUER_KEY_GRACE_SECONDS must be at least the token lifetime")
        return self

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer_url.rstrip('/')}/token"
