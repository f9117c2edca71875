"""Every service's entry point freezes its start-up objects before it serves, and a full
collection then leaves them alone."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import gc, sys, time
import uvicorn
from {module} import __main__ as entry
seen = []
def run(app, **kwargs):
    seen.append(gc.get_freeze_count())
uvicorn.run = run
entry.main()
print(seen[0])
"""


@pytest.mark.parametrize(
    "module", ["services.intake", "services.registry", "services.router", "services.issuer"]
)
def test_each_service_freezes_its_start_up_objects_before_serving(module: str) -> None:
    # in a child process: a frozen heap would outlive this test in the suite's own process
    env = {
        "DATABASE_URL": "postgresql+asyncpg://caseshare:not-a-real-secret-0000@127.0.0.1:1/x",
        "SELECTOR_HMAC_KEY": "k" * 64,
        "PATH": "/usr/bin:/bin",
    }
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.split()[-1]) > 50_000


def test_a_full_collection_skips_frozen_objects() -> None:
    probe = (
        "import gc, services.router.app\n"
        "from shared.heap import freeze_startup_objects\n"
        "before = len(gc.get_objects())\n"
        "frozen = freeze_startup_objects()\n"
        "print(frozen >= before * 0.9, len(gc.get_objects()) < before // 10)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["True", "True"]
