"""The compose topology is valid Compose and is the production-like shape the deploy promises."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.topology import COMPOSE, compose_document, compose_schema_problems, mutated


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return compose_document()


def test_the_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    assert compose_schema_problems(compose) == []


@pytest.mark.parametrize(
    "breakage",
    [
        pytest.param(lambda d: d["services"]["intake"].update(replicas=2), id="unknown-key"),
        pytest.param(lambda d: d["services"]["router"].update(ports=8002), id="ports-not-a-list"),
        pytest.param(
            lambda d: d["services"]["migrate"]["depends_on"]["postgres"].update(
                condition="service_ready"
            ),
            id="bad-condition",
        ),
        pytest.param(lambda d: d.update(volume={}), id="misspelt-top-level"),
    ],
)
def test_a_broken_compose_file_fails_the_schema(compose: dict[str, Any], breakage: Any) -> None:
    assert compose_schema_problems(mutated(compose, breakage))


def kafka_env(compose: dict[str, Any]) -> list[dict[str, str]]:
    return [s["environment"] for n, s in compose["services"].items() if n[-1].isdigit()]


def test_kafka_is_three_kraft_brokers_with_rf3_min_isr2_and_sasl_ssl(
    compose: dict[str, Any],
) -> None:
    brokers = kafka_env(compose)
    assert len(brokers) == 3
    assert {b["KAFKA_NODE_ID"] for b in brokers} == {"1", "2", "3"}
    for env in brokers:
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert "CLIENTS:SASL_SSL" in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
        assert "PLAINTEXT" not in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
        assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    services = compose["services"]
    for name in ("router", "topics"):
        assert services[name]["environment"]["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert services[name]["environment"]["KAFKA_REPLICATION_FACTOR"] == "3"


def test_two_replicas_of_each_service_and_the_supporting_cast(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("intake", "router", "registry"):
        assert services[name]["deploy"]["replicas"] == 2
    assert {"postgres", "keycloak", "prometheus", "grafana", "otel-collector"} <= set(services)
    realm = services["keycloak"]["volumes"][0]
    assert realm.startswith("../keycloak/realm-export.json:")
    assert "--import-realm" in services["keycloak"]["command"]


def test_migrations_run_as_the_owner_and_services_as_the_app_role(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    owner_files = [e["path"] for e in services["migrate"]["env_file"]]
    assert owner_files == ["./secrets/owner.env"]
    assert services["migrate"]["environment"]["DATABASE_APP_ROLE"] == "caseshare_app"
    for name in ("intake", "router", "registry", "topics"):
        files = [e["path"] for e in services[name]["env_file"]]
        assert "./secrets/app.env" in files
        assert "./secrets/owner.env" not in files
    assert services["postgres"]["environment"]["POSTGRES_USER"] == "caseshare_owner"


def test_the_certificate_script_makes_a_ca_and_certificates_that_chain_to_it(
    tmp_path: Path,
) -> None:
    """`kafka/make-certs.sh` is what an operator runs first; it must produce what compose mounts."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is not installed")
    copy = tmp_path / "compose"
    shutil.copytree(COMPOSE.parent, copy, ignore=shutil.ignore_patterns("*.pem", "*.key"))
    done = subprocess.run(
        ["bash", str(copy / "kafka" / "make-certs.sh"), "FR", "DE"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    secrets = copy / "secrets"
    mounted = {s["file"].removeprefix("./secrets/") for s in compose_document()["secrets"].values()}
    made = {p.name for p in secrets.iterdir()}
    assert {"kafka-ca.pem", "kafka-broker-keystore.pem", "kafka-admin-keystore.pem"} <= made
    assert {"kafka-ca.pem", "kafka-broker-keystore.pem", "kafka-admin-keystore.pem"} <= mounted
    for leaf in ("kafka-broker.pem", "kafka-admin.pem", "member-fr.pem", "member-de.pem"):
        verified = subprocess.run(
            ["openssl", "verify", "-CAfile", str(secrets / "kafka-ca.pem"), str(secrets / leaf)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert verified.returncode == 0, verified.stdout + verified.stderr
    subject = subprocess.run(
        ["openssl", "x509", "-noout", "-subject", "-in", str(secrets / "member-fr.pem")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "CN = member-fr" in subject  # the principal the ACL plan names


@pytest.mark.parametrize("script", ["kafka/setup.sh", "postgres/10-app-role.sh"])
def test_the_helper_scripts_parse(script: str) -> None:
    done = subprocess.run(
        ["bash", "-n", str(COMPOSE.parent / script)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def test_every_file_compose_mounts_from_the_repository_exists(compose: dict[str, Any]) -> None:
    """Bind mounts of committed files (configs, scripts, the realm); secrets are made locally."""
    base = COMPOSE.parent
    mounted = [
        volume.split(":", 1)[0]
        for service in compose["services"].values()
        for volume in service.get("volumes", [])
        if volume.startswith(".")
    ]
    mounted += [
        s["build"]["context"] + "/" + s["build"]["dockerfile"]
        for s in compose["services"].values()
        if "build" in s
    ]
    assert mounted
    missing = [path for path in mounted if not (base / path).resolve().exists()]
    assert missing == []
    for entry in (e for s in compose["services"].values() for e in s.get("env_file", [])):
        assert (base / (entry["path"] + ".example")).exists(), entry["path"]
