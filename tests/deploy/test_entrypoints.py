"""The image's commands exist: each one the Dockerfile, compose and the manifests name is a
project script whose target imports, installed the way the image installs the project."""

from __future__ import annotations

import re

from tests.deploy.topology import (
    DEPLOY,
    K8S,
    OVERLAYS,
    ROOT,
    compose_document,
    dockerfile_commands,
    entry_point_problems,
    render,
    workloads,
)

DOCKERFILE = (DEPLOY / "image" / "Dockerfile").read_text()
ONE_PER_PROCESS = {
    "caseshare-intake",
    "caseshare-registry",
    "caseshare-router",
    "caseshare-issuer",
    "caseshare-migrate",
    "caseshare-topics",
}


def test_the_dockerfile_offers_one_command_per_process() -> None:
    assert set(dockerfile_commands(DOCKERFILE)) == ONE_PER_PROCESS
    assert entry_point_problems(dockerfile_commands(DOCKERFILE)) == []


def test_every_command_in_the_topologies_exists() -> None:
    named = [
        s["command"][0]
        for s in compose_document()["services"].values()
        if str(s.get("command", [""])[0]).startswith("caseshare-")
    ]
    for overlay in OVERLAYS:
        for workload in workloads(render(K8S / "overlays" / overlay)):
            named += [c["command"][0] for c in workload["spec"]["template"]["spec"]["containers"]]
    assert set(named) == ONE_PER_PROCESS - {"caseshare-issuer"}
    assert entry_point_problems(named) == []


def test_a_command_that_does_not_exist_fails() -> None:
    assert entry_point_problems(["caseshare-intke"]) == [
        "caseshare-intke: not a [project.scripts] entry"
    ]


def test_the_image_is_built_from_the_lock_and_runs_as_non_root() -> None:
    stages = re.findall(r"^FROM \S+ AS (\w+)$", DOCKERFILE, flags=re.MULTILINE)
    assert stages == ["build", "runtime"]
    assert "uv sync --frozen --no-dev --no-editable" in DOCKERFILE
    runtime = DOCKERFILE[DOCKERFILE.index("AS runtime") :]
    assert re.search(r"^USER 10001:10001$", runtime, flags=re.MULTILINE)
    assert "COPY --from=build" in runtime
    copied = set(re.findall(r"^COPY (\w+) \./\1$", DOCKERFILE, flags=re.MULTILINE))
    assert copied == {"shared", "services", "caseshare"}
    assert (ROOT / "uv.lock").exists()
