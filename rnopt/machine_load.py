"""How busy the machine is with other work, measured just before timing (Linux /proc)."""
from __future__ import annotations

import os
import time

BUSY_WARNING = 0.25  # share of all cores used by other processes that makes timings suspect


def _cpu_jiffies() -> tuple[int, int]:
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]), idle


def _own_jiffies() -> int:
    with open(f"/proc/{os.getpid()}/stat") as f:
        after_name = f.read().rsplit(")", 1)[1].split()
    return int(after_name[11]) + int(after_name[12])  # utime + stime


def other_processes_busy(window_s: float = 0.3) -> float | None:
    """Share of total CPU time other processes used during a short idle window; None where unknown."""
    try:
        total0, idle0 = _cpu_jiffies()
        own0 = _own_jiffies()
        time.sleep(window_s)
        total1, idle1 = _cpu_jiffies()
        own1 = _own_jiffies()
    except (OSError, ValueError, IndexError):
        return None
    total = total1 - total0
    if total <= 0:
        return None
    busy = (total - (idle1 - idle0)) - (own1 - own0)
    return max(0.0, busy / total)


def load_warning() -> str | None:
    busy = other_processes_busy()
    if busy is not None and busy > BUSY_WARNING:
        return (f"other processes were using {busy:.0%} of the CPU just before timing: "
                f"results may be slowed and noisy")
    return None
