"""One `caseshare up` for every end-to-end test that kills and restarts nothing.

Booting the whole stack costs tens of seconds, so the CLI, dashboard and walking-skeleton tests
share one, started as a user would (`caseshare up` as a child process on free ports). Tests
that kill a service or restart the stack start their own (see `own_stack`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from caseshare.stack import supervised
from tests.log_scan import file_leaks, stack_log_files

# Under pytest-xdist (`make test` runs `--dist loadgroup`), every test of one stack goes to the
# same worker, so each stack boots once; the tests that start their own servers go anywhere.
STACK_GROUPS = {"running": "shared-stack", "own_stack": "own-stack"}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups off the items
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "e2e" not in item.keywords:
            continue  # another directory's fixture may share a name
        for fixture, group in STACK_GROUPS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.xdist_group(group))
                break
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # Longest first: the stack groups (sent first, being the largest) and the router's
        # failure tests take minutes each, the rest seconds. Handed out in collection order,
        # they would start last and leave one worker idle while the other finished them.
        items.sort(key=lambda item: "e2e" not in item.keywords)


@pytest.fixture(scope="session")
def disclosed() -> set[str]:
    """Values the e2e tests disclose; every stack's logs are scanned for them once stopped."""
    return set()


def _run(state: Path, disclosed: set[str]) -> Iterator[supervised.RunningStack]:
    running = supervised.start(state, supervised.allocate_ports())
    try:
        yield running
    finally:
        if running.proc.poll() is None:
            supervised.stop(running)
    # Once everything has stopped: no log the stack wrote (services, broker, PostgreSQL,
    # supervisor) holds a disclosed value, on the paths that worked or failed ...
    files = stack_log_files(state)
    assert any(f.name == "intake.log" for f in files)
    assert file_leaks(files, disclosed) == {}
    # ... and only their owner could have read them (the supervisor's output is the test's).
    modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in files if f.parent != state.parent}
    assert set(modes.values()) == {0o600}, modes


@pytest.fixture(scope="session")
def running(
    tmp_path_factory: pytest.TempPathFactory, disclosed: set[str]
) -> Iterator[supervised.RunningStack]:
    """The shared stack; tests use fresh references and read only what they wrote."""
    yield from _run(tmp_path_factory.mktemp("e2e") / "state", disclosed)


@pytest.fixture(scope="module")
def own_stack(
    tmp_path_factory: pytest.TempPathFactory, disclosed: set[str]
) -> Iterator[supervised.RunningStack]:
    """A stack of the module's own, for tests that kill a service or stop the stack."""
    yield from _run(tmp_path_factory.mktemp("own") / "state", disclosed)
