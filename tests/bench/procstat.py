"""Another process's CPU time and memory, read from ``/proc`` (Linux).

``cpu_s`` is what the issue asks for (``utime + stime`` from ``/proc/<pid>/stat``, all
threads, in clock ticks of 10 ms); ``cpu_ns`` reads the same figure in nanoseconds for
the short windows where ticks are too coarse (per-1,000-chunk slices of one stream). All
return ``None`` when the process is gone.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float | None:
    """User + system CPU seconds the process has used so far."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) * _TICK_S


def cpu_ns(pid: int) -> int | None:
    """CPU nanoseconds the process has used so far: the same accounting as ``cpu_s``, read
    through the process's CPU-time clock (``clock_getcpuclockid``), which is up to date even
    while the process runs on another CPU."""
    try:
        return time.clock_gettime_ns(_process_clock(pid))
    except OSError:
        return None


def _process_clock(pid: int) -> int:
    # Linux's clock id for a process's CPU time, as clock_getcpuclockid(3) computes it:
    # MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED) = (~pid << 3) | 2
    return ((~pid) << 3) | 2


def rss_bytes(pid: int, field: str = "VmRSS") -> int | None:
    """Resident memory (``VmRSS``) or its high-water mark (``VmHWM``), in bytes."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(field.encode() + b":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def machine_busy_s() -> float:
    """CPU seconds all CPUs have spent busy since boot (``/proc/stat``: everything but idle
    and iowait); compared with our own processes' time it shows what else ran meanwhile."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    ticks = [int(v) for v in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    guests = sum(ticks[8:10])  # guest time is already counted in user and nice
    return (sum(ticks) - idle - guests) * _TICK_S
