"""Peak resident memory and CPU time of each service, sampled while a phase runs.

A background thread polls psutil every 100 ms; RSS between samples is not seen, which is
acceptable for a figure compared against a 150 MiB budget with a margin. A service run with
several uvicorn workers is a process tree: its RSS figure is the largest single process (the
budget is per process), its total is kept beside it, and its CPU is the whole tree's.
"""

from __future__ import annotations

import threading
from types import TracebackType

import psutil

MIB = 1024 * 1024
INTERVAL = 0.1


def _tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return [root]


class Sampler:
    """`with Sampler(pids) as s:` ... then `s.peak_mib`, `s.peak_total_mib` and
    `s.cpu_seconds` per service."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._roots = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.peak_mib: dict[str, float] = dict.fromkeys(pids, 0.0)
        self.peak_total_mib: dict[str, float] = dict.fromkeys(pids, 0.0)
        self.cpu_seconds: dict[str, float] = {}
        self._cpu_start: dict[str, dict[int, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._cpu_start = {name: _cpu(root) for name, root in self._roots.items()}
        self._thread.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.cpu_seconds = {}
        for name, root in self._roots.items():
            end, start = _cpu(root), self._cpu_start[name]
            self.cpu_seconds[name] = sum(t - start.get(pid, 0.0) for pid, t in end.items())

    def _loop(self) -> None:
        while not self._stop.wait(INTERVAL):
            self._sample()

    def _sample(self) -> None:
        for name, root in self._roots.items():
            sizes = []
            for proc in _tree(root):
                try:
                    sizes.append(proc.memory_info().rss / MIB)
                except psutil.Error:
                    continue
            if sizes:
                self.peak_mib[name] = max(self.peak_mib[name], max(sizes))
                self.peak_total_mib[name] = max(self.peak_total_mib[name], sum(sizes))


def _cpu(root: psutil.Process) -> dict[int, float]:
    """CPU seconds so far of each process of the tree, by pid."""
    found: dict[int, float] = {}
    for proc in _tree(root):
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        found[proc.pid] = float(times.user + times.system)
    return found
