"""Every setting each process reads is set in both topologies, or deliberately left at its
default (with the reason in `topology.DELIBERATE_DEFAULTS`), and validates as it would at start."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from tests.deploy.topology import (
    DELIBERATE_DEFAULTS,
    K8S,
    KEY_RING,
    KEY_RING_READERS,
    NOT_USED,
    OVERLAYS,
    SETTINGS,
    Container,
    compose_containers,
    compose_document,
    k8s_containers,
    key_ring_problems,
    render,
    settings_problems,
)

ROOT = Path(__file__).resolve().parents[2]


def all_containers() -> list[Container]:
    found = compose_containers(compose_document())
    for overlay in OVERLAYS:
        found += k8s_containers(render(K8S / "overlays" / overlay), overlay)
    return found


CONTAINERS = all_containers()


def test_both_topologies_run_every_production_process() -> None:
    for prefix in ("compose:", "k8s:dev:", "k8s:prod:"):
        commands = {c.command for c in CONTAINERS if c.where.startswith(prefix)}
        assert commands == set(SETTINGS), prefix


@pytest.mark.parametrize("container", CONTAINERS, ids=lambda c: c.where)
def test_every_setting_is_set_or_deliberately_defaulted(container: Container) -> None:
    assert settings_problems(container) == []


def test_every_settings_class_of_the_services_is_checked() -> None:
    """A new service's settings class must be mapped to its command here."""
    checked = set(SETTINGS.values())
    for path in sorted(ROOT.glob("services/*/settings.py")):
        module = importlib.import_module(f"services.{path.parent.name}.settings")
        for value in vars(module).values():
            is_own = getattr(value, "__module__", None) == module.__name__
            if is_own and isinstance(value, type) and issubclass(value, BaseSettings):
                assert value in checked or value.__name__ == "IssuerSettings", value


def test_deliberate_defaults_name_real_settings() -> None:
    known = {f.alias for cls in SETTINGS.values() for f in cls.model_fields.values()}
    assert set(DELIBERATE_DEFAULTS) - known == set()


def pick(where: str) -> Container:
    return next(c for c in CONTAINERS if c.where == where)


def without(container: Container, var: str) -> Container:
    env = {k: v for k, v in container.env.items() if k != var}
    secret_from = {k: v for k, v in container.secret_from.items() if k != var}
    return dataclasses.replace(
        container, env=env, secret_env=container.secret_env - {var}, secret_from=secret_from
    )


def test_a_missing_required_setting_fails() -> None:
    problems = settings_problems(without(pick("compose:intake"), "SELECTOR_HMAC_KEY"))
    assert any("required SELECTOR_HMAC_KEY is not set" in p for p in problems)


def test_a_setting_left_at_a_development_default_fails() -> None:
    problems = settings_problems(without(pick("k8s:prod:Deployment/router"), "ROUTER_HOST"))
    assert problems == [
        "k8s:prod:Deployment/router: ROUTER_HOST is neither set nor deliberately defaulted"
    ]


def test_a_misspelt_setting_fails() -> None:
    router = pick("compose:router")
    broken = dataclasses.replace(router, env=router.env | {"ROUTER_MAX_ATTEMPT": "3"})
    assert any("ROUTER_MAX_ATTEMPT is set but" in p for p in settings_problems(broken))


def test_a_value_the_service_would_refuse_fails() -> None:
    router = pick("k8s:prod:Deployment/router")
    broken = dataclasses.replace(router, env=router.env | {"KAFKA_SASL_MECHANISM": "PLAIN"})
    assert any("refuses the environment" in p for p in settings_problems(broken))


TOPOLOGIES = ("compose:", "k8s:dev:", "k8s:prod:")


def topology(prefix: str) -> list[Container]:
    return [c for c in CONTAINERS if c.where.startswith(prefix)]


@pytest.mark.parametrize("prefix", TOPOLOGIES)
def test_intake_and_router_share_one_key_ring_from_a_secret(prefix: str) -> None:
    containers = topology(prefix)
    assert {c.command for c in containers} >= set(KEY_RING_READERS)
    assert key_ring_problems(containers) == []


def test_every_process_that_reads_the_key_ring_is_held_to_sharing_it() -> None:
    """A process that starts sealing or opening (its class reads the ring and it is not marked
    unused) must join KEY_RING_READERS, so the check above covers it."""
    for command, cls in SETTINGS.items():
        aliases = {f.alias for f in cls.model_fields.values()}
        reads = KEY_RING in aliases and KEY_RING not in NOT_USED[command]
        assert reads == (command in KEY_RING_READERS), command
    assert KEY_RING not in DELIBERATE_DEFAULTS


def test_a_router_on_a_key_ring_of_its_own_fails() -> None:
    broken = [
        dataclasses.replace(c, secret_from=c.secret_from | {KEY_RING: "caseshare-other/ring"})
        if c.command == "caseshare-router"
        else c
        for c in topology("k8s:prod:")
    ]
    assert any("different secrets" in p for p in key_ring_problems(broken))


def test_intake_left_on_the_development_key_ring_fails() -> None:
    containers = [
        without(c, KEY_RING) if c.command == "caseshare-intake" else c for c in topology("compose:")
    ]
    problems = key_ring_problems(containers)
    assert f"compose:intake: {KEY_RING} does not come from a secret" in problems
    assert any("different secrets" in p for p in problems)


def test_every_setting_a_secret_supplies_is_in_the_deploy_guide() -> None:
    readme = (ROOT / "deploy" / "README.md").read_text()
    table = readme[readme.index("## Settings that matter") : readme.index("## Compose")]
    from_secrets = {var for c in CONTAINERS for var in c.secret_env}
    assert KEY_RING in from_secrets
    assert {var for var in from_secrets if f"`{var}`" not in table} == set()
