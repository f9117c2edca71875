"""Peak resident memory and CPU time of each service process, sampled while a phase runs.

A background thread polls psutil every 100 ms; RSS between samples is not seen, which is
acceptable for a figure compared against a 150 MiB budget with a margin.
"""

from __future__ import annotations

import threading
from types import TracebackType

import psutil

MIB = 1024 * 1024
INTERVAL = 0.1


class Sampler:
    """`with Sampler(pids) as s:` ... then `s.peak_mib` and `s.cpu_seconds` per service."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.peak_mib: dict[str, float] = dict.fromkeys(pids, 0.0)
        self.cpu_seconds: dict[str, float] = {}
        self._cpu_start: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._cpu_start = {name: _cpu(p) for name, p in self._procs.items()}
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
        self.cpu_seconds = {
            name: _cpu(p) - self._cpu_start[name] for name, p in self._procs.items()
        }

    def _loop(self) -> None:
        while not self._stop.wait(INTERVAL):
            self._sample()

    def _sample(self) -> None:
        for name, proc in self._procs.items():
            try:
                rss = proc.memory_info().rss / MIB
            except psutil.Error:
                continue
            self.peak_mib[name] = max(self.peak_mib[name], rss)


def _cpu(proc: psutil.Process) -> float:
    try:
        times = proc.cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)
