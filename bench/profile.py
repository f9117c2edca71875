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

OWN_CODE = ("services/", "shared/")


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


def summarize(path: Path, *, top: int = 25) -> dict[str, list[tuple[str, float]]]:
    """Shares of samples (percent) by function: inclusive over our code, and self overall."""
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    if not path.exists():
        return {"inclusive": [], "self": []}
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        for name in {_short(f) for f in frames if any(own in f for own in OWN_CODE)}:
            inclusive[name] += count
        leaf[_short(frames[-1])] += count
    if total == 0:
        return {"inclusive": [], "self": []}

    def pct(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * n / total, 1)) for name, n in counter.most_common(top)]

    return {"inclusive": pct(inclusive), "self": pct(leaf)}


def _short(frame: str) -> str:
    """`func (path/to/file.py:12)` -> `func (file.py)`, so lines of one function add up."""
    name, _, where = frame.partition(" (")
    file = where.split(":")[0].rstrip(")")
    for marker in ("site-packages/", "/work/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{name} ({file})"
