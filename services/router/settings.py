"""Router settings: consumer group, re-publication policy, health port."""

from __future__ import annotations

from pydantic import Field, model_validator

from services.registry.webhooks.settings import WebhookSettings
from shared.settings import CommonSettings, DatabaseSettings, KafkaSettings

CONSUMER_FETCH_MAX_WAIT_MS = 5


class RouterSettings(CommonSettings, DatabaseSettings, KafkaSettings, WebhookSettings):
    """How the router consumes, re-drives and re-publishes."""

    host: str = Field(default="127.0.0.1", alias="ROUTER_HOST")
    port: int = Field(default=8002, alias="ROUTER_PORT")
    group_id: str = Field(default="caseshare-router", alias="ROUTER_GROUP_ID")
    partitions: int = Field(default=6, alias="KAFKA_PARTITIONS", ge=1, le=64)
    ack_timeout_seconds: float = Field(default=300, alias="ROUTER_ACK_TIMEOUT_SECONDS", gt=0)
    backoff_cap_seconds: float = Field(default=3600, alias="ROUTER_BACKOFF_CAP_SECONDS", gt=0)
    max_attempts: int = Field(default=8, alias="ROUTER_MAX_ATTEMPTS", ge=1)
    redrive_after_seconds: float = Field(default=10, alias="ROUTER_REDRIVE_AFTER_SECONDS", gt=0)
    reconcile_interval_seconds: float = Field(
        default=2, alias="ROUTER_RECONCILE_INTERVAL_SECONDS", gt=0
    )
    session_timeout_ms: int = Field(
        default=10000, alias="ROUTER_SESSION_TIMEOUT_MS", ge=6000, le=300000
    )
    relay_batch: int = Field(default=500, alias="RELAY_BATCH", ge=1, le=5000)
    # The longest a fetch of the responses topic waits at the broker for data. Tansu does not
    # answer a waiting fetch when data arrives (BROKER.md), so this is the router's hop:
    # a response waits up to this long before its fan-out starts. Apache Kafka answers at
    # once, so there a larger value only saves idle fetches.
    fetch_max_wait_ms: int = Field(
        default=CONSUMER_FETCH_MAX_WAIT_MS, alias="ROUTER_FETCH_MAX_WAIT_MS", ge=1, le=500
    )
    # Responses fanned out together (one transaction, one produce batch), from what one fetch
    # of a partition returned: never waited for, so a lone response goes alone at once.
    batch_size: int = Field(default=32, alias="ROUTER_BATCH_SIZE", ge=1, le=500)
    # ... and fewer when responses have many recipients: a batch holds every delivery it seals
    # (held ones too) until it is produced, so its size follows the deliveries per response of
    # the batch before, to keep about this many in memory at once.
    batch_deliveries: int = Field(default=256, alias="ROUTER_BATCH_DELIVERIES", ge=1, le=10000)
    replay_window_seconds: float = Field(default=3600, alias="ROUTER_REPLAY_WINDOW_SECONDS", ge=0)
    # Published outbox events older than this are deleted; never shorter than the replay window.
    outbox_retention_seconds: float = Field(
        default=7 * 86400, alias="OUTBOX_RETENTION_SECONDS", gt=0
    )
    # A retry with the same Idempotency-Key gets the first answer for at least this long.
    idempotency_key_ttl_seconds: float = Field(
        default=86400, alias="IDEMPOTENCY_KEY_TTL_SECONDS", gt=0
    )

    # A held delivery nobody decides on lapses after this; the originator is reminded before.
    release_lapse_seconds: float = Field(default=30 * 86400, alias="RELEASE_LAPSE_SECONDS", gt=0)
    release_reminder_seconds: float = Field(
        default=3 * 86400, alias="RELEASE_REMINDER_SECONDS", gt=0
    )
    # A delivery's ciphertext is deleted this long after its acknowledgement (default 90 days).
    payload_retention_seconds: float = Field(
        default=90 * 86400, alias="PAYLOAD_RETENTION_SECONDS", gt=0
    )
    # A recalled, acknowledged delivery's recipient is reminded this often until it confirms.
    deletion_reminder_seconds: float = Field(default=86400, alias="DELETION_REMINDER_SECONDS", gt=0)

    @model_validator(mode="after")
    def _retention_covers_replay(self) -> RouterSettings:
        if self.outbox_retention_seconds < self.replay_window_seconds:
            raise ValueError(
                "OUTBOX_RETENTION_SECONDS must be at least ROUTER_REPLAY_WINDOW_SECONDS:"
                " a broker that lost its data is healed from the events kept"
            )
        return self
