"""Peak memory of this process, for `train` and `sample --verbose` (and so for `bench`)."""

from __future__ import annotations

import sys


def peak_rss_mb() -> float:
    """This process' peak resident memory in MB (0 where unknown).

    Linux: VmHWM, the high-water mark of this program's own memory. getrusage's ru_maxrss would
    also count the memory of the process we were forked from before exec.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        return 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
