"""Optional sampling profiles of a service under load (`BENCH_PROFILE=1 make bench`).

py-spy attaches to the running process from outside, so the service runs unmodified; the
collapsed stacks are saved beside the results and summarised as the functions of our own
code (services/, shared/) with the largest share of samples, inclusive and self.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

OWN_CODE = ("services/", "shared/")
MAIN_THREAD = "_run_module_as_main"
# the event loop blocked in epoll/select shows as one of these frames with nothing above it
IDLE_LEAVES = ("Runner.run", "select (selectors.py", "EpollSelector.select")


@contextlib.contextmanager
def spy(pid: int, out: Path, *, seconds: float) -> Iterator[None]:
    """Record `pid` for up to `seconds` while the body runs; no-op without py-spy."""
    exe = shutil.which("py-spy") or str(Path(".venv/bin/py-spy"))
    if not Path(exe).exists():
        yield
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(  # noqa: S603 - a fixed program and our own arguments
        [
            *(exe, "record", "--pid", str(pid), "--duration", str(int(seconds))),
            *("--rate", "200", "--format", "raw", "--nonblocking", "--output", str(out)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(seconds + 30)


def summarize(path: Path, *, top: int = 25) -> dict[str, Any]:
    """Where the main thread's busy samples went (percent): inclusive over our own code, and
    self overall. Samples where the event loop waits for I/O count as idle, not busy."""
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    busy = idle = 0
    for line in path.read_text().splitlines() if path.exists() else []:
        stack, _, count_text = line.rpartition(" ")
        if not stack.startswith(MAIN_THREAD) or not count_text.isdigit():
            continue
        count, frames = int(count_text), stack.split(";")
        if frames[-1].startswith(IDLE_LEAVES):
            idle += count
            continue
        busy += count
        for name in {_short(f) for f in frames if any(own in f for own in OWN_CODE)}:
            inclusive[name] += count
        leaf[_short(frames[-1])] += count

    def pct(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * n / busy, 1)) for name, n in counter.most_common(top)]

    return {
        "busy_pct": round(100 * busy / (busy + idle), 1) if busy + idle else 0.0,
        "inclusive": pct(inclusive) if busy else [],
        "self": pct(leaf) if busy else [],
    }


def _short(frame: str) -> str:
    """`func (path/to/file.py:12)` -> `func (file.py)`, so lines of one function add up."""
    name, _, where = frame.partition(" (")
    file = where.split(":")[0].rstrip(")")
    for marker in ("site-packages/", "/work/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{name} ({file})"
