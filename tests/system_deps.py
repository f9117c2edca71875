"""Debian packages that some tests drive as a user would (`make test` installs them first).

Run as `python -m tests.system_deps`, or with package names to install those instead (`make
bench` asks for wrk this way). Keep `PACKAGES` a plain list, one package per line, so branches
that each add one merge without conflict.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

PACKAGES = [
    "kcat",  # tests/e2e/test_cli.py runs the README's kcat recipe
    "chromium",  # tests/e2e/test_dashboard.py drives /usr/bin/chromium with Playwright
    "stunnel4",  # tests/integration/test_kafka_tls.py puts TLS in front of the embedded broker
    "prometheus",  # tests/deploy/test_alerts.py runs promtool check rules and test rules
]


def say(line: str) -> None:
    sys.stdout.write(f"system_deps: {line}\n")
    sys.stdout.flush()


def installed(package: str) -> bool:
    probe = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package],
        capture_output=True,
        text=True,
        check=False,
    )
    return probe.returncode == 0 and probe.stdout.endswith("install ok installed")


def main(packages: list[str]) -> int:
    if shutil.which("apt-get") is None or shutil.which("dpkg-query") is None:
        say(f"no apt-get here; install by hand if needed: {' '.join(packages)}")
        return 0
    missing = [p for p in packages if not installed(p)]
    if not missing:
        say(f"already installed: {' '.join(packages)}")
        return 0
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    for command in (
        [*sudo, "apt-get", "update"],
        [*sudo, "apt-get", "install", "-y", "--no-install-recommends", *missing],
    ):
        say(" ".join(command))
        done = subprocess.run(
            command, check=False, env=os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
        )
        if done.returncode != 0:
            say(f"{command[len(sudo)]} failed with exit code {done.returncode}")
            return done.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or PACKAGES))
