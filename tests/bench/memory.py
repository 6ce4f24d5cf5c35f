"""Peak resident memory of this process, measured so a parent's size cannot leak in.

`getrusage().ru_maxrss` survives fork and exec on Linux: a child started by a 4 GB bench parent
reported 4.8 GB for a stage that peaks at 2 GB. The kernel's VmHWM belongs to the address space,
which exec replaces, so it is this program's own high-water mark.
"""

from __future__ import annotations

import resource
from pathlib import Path


def peak_rss_mib() -> float:
    """VmHWM of this process in MiB (ru_maxrss where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
