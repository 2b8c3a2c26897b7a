"""CPU time and wakeups of a thread or a process, read from Linux /proc (idle-cost tests).

``/proc/PID/task/TID/stat`` fields 14 and 15 (utime, stime) count clock ticks (usually 1/100 s)
spent by one thread; ``/proc/PID/stat`` the same for the whole process. A thread's
``voluntary_ctxt_switches`` (``/proc/PID/task/TID/status``) counts the times it went to sleep,
i.e. its wakeups. CPU time and counts, not wall time: what a polling loop costs shows up however
loaded the machine is.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from tests.support.realparts import require

TICK = 1 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01
#: What "no measurable CPU" means over an idle stretch: a few clock ticks at most. A loop that
#: polls without blocking burns the whole stretch (or, on a loaded machine, a large share of it).
IDLE_CPU_BOUND = 0.05
IDLE_SECONDS = 2.0
#: Wakeups a blocking loop may have over the stretch: one a second for maintenance, and a spare.
#: A loop polling every 0.1-0.2 s wakes 10-20 times.
IDLE_WAKEUPS_BOUND = 5


def _cpu_from_stat(path: Path) -> float:
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = path.read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of stat(5)
    return (utime + stime) * TICK


def thread_cpu_seconds(thread: threading.Thread, pid: int | None = None) -> float:
    """CPU seconds ``thread`` (of this process, by default) has used so far."""
    assert thread.native_id is not None, "the thread has not started"
    return _cpu_from_stat(Path(f"/proc/{pid or os.getpid()}/task/{thread.native_id}/stat"))


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds process ``pid`` has used so far (every thread, children not included)."""
    return _cpu_from_stat(Path(f"/proc/{pid}/stat"))


def thread_wakeups(thread: threading.Thread) -> int:
    """How often ``thread`` (of this process) has gone to sleep so far."""
    status = Path(f"/proc/self/task/{thread.native_id}/status").read_text()
    for line in status.splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches in /proc")


def idle_thread_cost(thread: threading.Thread, seconds: float = IDLE_SECONDS) -> tuple[float, int]:
    """(CPU seconds, wakeups) of ``thread`` over ``seconds`` of nobody asking it anything."""
    require(Path(f"/proc/self/task/{thread.native_id}").is_dir(), "Linux /proc", "run on Linux")
    cpu, woke = thread_cpu_seconds(thread), thread_wakeups(thread)
    time.sleep(seconds)
    return thread_cpu_seconds(thread) - cpu, thread_wakeups(thread) - woke


def assert_idle(thread: threading.Thread) -> None:
    """``thread`` burns no measurable CPU and wakes at most about once a second while idle."""
    cpu, wakeups = idle_thread_cost(thread)
    assert cpu < IDLE_CPU_BOUND, f"{thread.name} used {cpu:.2f} CPU-s in {IDLE_SECONDS} s idle"
    assert wakeups <= IDLE_WAKEUPS_BOUND, f"{thread.name} woke {wakeups} times in {IDLE_SECONDS} s"
