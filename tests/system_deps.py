"""Install the system packages the test suite drives but cannot get from PyPI: Debian's chromium.

The browser tests launch /usr/bin/chromium through Playwright, because Playwright's own browser
download is not reachable here. `make test` runs this first, so a fresh machine needs no manual
step; it exits non-zero with the reason when the browser is missing and cannot be installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
COMMANDS = (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"])


def _say(message: str) -> None:
    sys.stdout.write(f"system_deps: {message}\n")
    sys.stdout.flush()


def ensure_chromium() -> int:
    """Zero when /usr/bin/chromium exists or was installed; non-zero, with the reason, if not."""
    if CHROMIUM.exists():
        return 0
    if os.geteuid() != 0:
        _say(f"{CHROMIUM} is missing; run as root: apt-get update && apt-get install -y chromium")
        return 1
    if shutil.which("apt-get") is None:
        _say(f"{CHROMIUM} is missing and apt-get is not available; install Chromium by hand")
        return 1
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in COMMANDS:
        _say("running " + " ".join(command))
        done = subprocess.run(command, env=env, check=False)
        if done.returncode != 0:
            _say(f"{' '.join(command)} failed with exit code {done.returncode}")
            return done.returncode
    if not CHROMIUM.exists():
        _say(f"chromium installed but {CHROMIUM} is still missing")
        return 1
    _say(f"installed {CHROMIUM}")
    return 0


if __name__ == "__main__":
    sys.exit(ensure_chromium())
