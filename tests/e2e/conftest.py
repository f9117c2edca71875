"""One `caseshare up` for every end-to-end test that kills and restarts nothing.

Booting the whole stack costs tens of seconds, so the CLI, dashboard and walking-skeleton tests
share one, started as a user would (`caseshare up` as a child process on free ports). Tests
that kill a service or restart the stack start their own (see `own_stack`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from caseshare.stack import supervised


def _run(state: Path) -> Iterator[supervised.RunningStack]:
    running = supervised.start(state, supervised.allocate_ports())
    try:
        yield running
    finally:
        if running.proc.poll() is None:
            supervised.stop(running)


@pytest.fixture(scope="session")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[supervised.RunningStack]:
    """The shared stack; tests use fresh references and read only what they wrote."""
    yield from _run(tmp_path_factory.mktemp("e2e") / "state")


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[supervised.RunningStack]:
    """A stack of the module's own, for tests that kill a service or stop the stack."""
    yield from _run(tmp_path_factory.mktemp("own") / "state")
