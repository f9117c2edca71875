"""The pure webhook rules: which URLs are accepted, the capped exponential backoff, when an
endpoint is disabled, and the secret's format."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook

from services.registry.webhooks.rules import (
    RetryPolicy,
    UrlRefused,
    check_url,
    is_success,
    new_secret,
)

NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.eu/caseshare",
        "https://hooks.example.eu:8443/h?x=1",
        "https://8.8.8.8/h",
    ],
)
def test_https_urls_are_accepted(url: str) -> None:
    assert check_url(url, allow_insecure_loopback=False) == url


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/h", "http://localhost/h", "http://[::1]:9/h"]
)
def test_plain_http_is_for_loopback_and_only_with_the_setting(url: str) -> None:
    assert check_url(url, allow_insecure_loopback=True) == url
    with pytest.raises(UrlRefused, match="https"):
        check_url(url, allow_insecure_loopback=False)
    with pytest.raises(UrlRefused, match="loopback"):
        check_url(url.replace("http://", "https://"), allow_insecure_loopback=False)


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.eu/h",
        "https://10.0.0.1/h",
        "https://169.254.169.254/latest",
        "https://[fd00::1]/h",
        "https://0.0.0.0/h",
        "http://127.0.0.1.example.eu/h",
        "ftp://127.0.0.1/h",
        "https://u:p@hooks.example.eu/h",
        "https:///h",
        "https://hooks.example.eu/h#frag",
        "https://hooks.example.eu:99999/h",
        "https://hooks.example.eu/" + "x" * 2000,
        "not a url",
    ],
)
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(UrlRefused):
        check_url(url, allow_insecure_loopback=True)


def test_backoff_doubles_and_is_capped() -> None:
    policy = RetryPolicy(base=timedelta(seconds=5), cap=timedelta(seconds=60))
    waits = [policy.backoff(n).total_seconds() for n in range(1, 7)]
    assert waits == [5, 10, 20, 40, 60, 60]
    assert policy.backoff(10_000) == timedelta(seconds=60)


def test_a_message_is_given_up_after_its_last_attempt() -> None:
    policy = RetryPolicy(base=timedelta(seconds=1), max_attempts=3)
    assert policy.next_attempt(2, NOW) == NOW + timedelta(seconds=2)
    assert policy.next_attempt(3, NOW) is None


def test_disabling_needs_both_enough_failures_and_enough_time() -> None:
    policy = RetryPolicy(disable_after_failures=5, disable_after=timedelta(hours=1))
    since = NOW - timedelta(hours=2)
    assert policy.should_disable(consecutive_failures=5, failing_since=since, now=NOW)
    assert not policy.should_disable(consecutive_failures=4, failing_since=since, now=NOW)
    recent = NOW - timedelta(minutes=5)
    assert not policy.should_disable(consecutive_failures=500, failing_since=recent, now=NOW)
    assert not policy.should_disable(consecutive_failures=5, failing_since=None, now=NOW)


def test_only_2xx_is_success() -> None:
    assert [is_success(s) for s in (200, 204, 299, 301, 404, 500)] == [
        True,
        True,
        True,
        False,
        False,
        False,
    ]


def test_secrets_are_standard_webhooks_secrets_and_differ() -> None:
    first, second = new_secret(), new_secret()
    assert first != second
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32
    Webhook(first)  # the library accepts it as is
