"""The CLI's Kafka clients take the same TLS and SASL environment variables as the services."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from caseshare.cli import inbox_reader
from caseshare.cli.client import CliError, ExitCode, Settings
from shared.kafka_security import client_kwargs
from shared.settings import KafkaSettings


@pytest.fixture(autouse=True)
def clean_kafka_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("KAFKA_")]:
        monkeypatch.delenv(name)


def scram(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "member-fr")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "s3cret-password")


def test_without_security_variables_the_bootstrap_is_plaintext() -> None:
    assert Settings(bootstrap="127.0.0.1:9092").kafka() == "127.0.0.1:9092"


def test_sasl_ssl_from_the_environment_reaches_the_client_arguments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scram(monkeypatch)
    target = Settings(bootstrap="kafka-1:9093,kafka-2:9093").kafka()
    assert isinstance(target, KafkaSettings)
    kwargs = client_kwargs(target)
    assert kwargs["bootstrap_servers"] == "kafka-1:9093,kafka-2:9093"
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kwargs["sasl_plain_username"] == "member-fr"
    assert kwargs["sasl_plain_password"] == "s3cret-password"
    assert kwargs["ssl_context"] is not None


def test_half_a_configuration_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")  # no mechanism
    with pytest.raises(CliError) as failed:
        Settings().kafka()
    assert failed.value.code is ExitCode.USAGE
    assert "KAFKA_SASL_MECHANISM" in failed.value.message


async def test_inbox_tail_and_peek_open_their_consumers_with_the_security_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    scram(monkeypatch)
    opened: list[dict[str, Any]] = []

    class Refused(Exception):
        pass

    class FakeConsumer:
        def __init__(self, *topics: str, **kwargs: Any) -> None:
            opened.append(kwargs)

        def subscribe(self, *_: Any, **__: Any) -> None:
            pass

        async def start(self) -> None:
            raise Refused

    def fake_make_consumer(target: Any, *topics: str, **kwargs: Any) -> FakeConsumer:
        return FakeConsumer(*topics, **client_kwargs(target), **kwargs)

    monkeypatch.setattr(inbox_reader, "make_consumer", fake_make_consumer)
    monkeypatch.setattr(inbox_reader, "AIOKafkaConsumer", FakeConsumer)
    cfg = Settings(bootstrap="kafka-1:9093")
    tail = inbox_reader.Tail(
        settings=cfg,
        jurisdiction="FR",
        key={},
        key_path=tmp_path / "FR.jwk",
        seen=inbox_reader.Seen(tmp_path / "seen.json"),
    )
    with pytest.raises(Refused):
        await inbox_reader.tail(tail, group="g", count=1, idle=None, replay=False)
    with pytest.raises(Refused):
        await inbox_reader.peek(cfg, "FR", match=lambda _: True, expect=1, within=1)
    assert [k["security_protocol"] for k in opened] == ["SASL_SSL", "SASL_SSL"]
    assert [k["sasl_plain_username"] for k in opened] == ["member-fr", "member-fr"]
