"""The default thread count of a call, chosen for its work and for the machine as it is now.

Measured on the project's 2-core machine (docs/benchmarks.md): one stream gains nothing from a
second intra-op thread, idle or busy; a batch of 256 rows writes 1.34x as much with both cores
when they are idle, but 0.54x when other work already fills them (onnxruntime's pool threads
then wait for cores). So one thread is the default, and a large batch takes the cores that
nothing else wants at the moment it starts: Linux's count of runnable tasks
(/proc/loadavg's fourth field) less this process's own says how many cores other work takes
right now, where a load average would lag a minute behind. Elsewhere, or when that count
cannot be read, one thread.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

WIDE_BATCH = 64  # rows from which a call may take the idle cores
_LOADAVG = Path("/proc/loadavg")
_TASKS = Path("/proc/self/task")
_READS = 3  # the fewest runnable tasks of a few reads: a passing task is not a busy core


def idle_cores() -> int | None:
    """Cores that no other process's runnable task wants now; None where the count cannot be
    read. This process's own threads do not count: a pool that just finished a call, or
    numpy's, is still runnable for a moment."""
    others = []
    for _ in range(_READS):
        try:
            running = int(_LOADAVG.read_text().split()[3].split("/")[0])
            others.append(running - _own_running())
        except (OSError, ValueError, IndexError):
            return None
    return max(0, (os.cpu_count() or 1) - min(others))


def _own_running() -> int:
    """This process's threads in state R (running or runnable)."""
    count = 0
    for task in _TASKS.iterdir():
        # A thread may end meanwhile. The state follows the command name, which is in
        # parentheses and may hold spaces.
        with contextlib.suppress(OSError, IndexError):
            count += (task / "stat").read_text().rsplit(")", 1)[1].split()[0] == "R"
    return count


def threads_for(batch: int) -> int:
    """Intra-op threads for a call of ``batch`` rows when none were asked for."""
    if batch < WIDE_BATCH:
        return 1
    return max(1, idle_cores() or 1)
