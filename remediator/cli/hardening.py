"""What ``serve`` does to its own process before it holds any request: no other process of
the same user (a ``command.run`` script, say) may read its memory, environment or descriptors.

``prctl(PR_SET_DUMPABLE, 0)`` makes ``/proc/PID/{environ,mem,fd,maps,...}`` of the service
readable by root only, refuses ``ptrace`` by the same user (so py-spy and gdb cannot attach
either) and turns core dumps off. ``REMEDIATOR_DUMPABLE=true`` leaves the process as it is,
for a debugging session.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

import structlog

from remediator.settings import Settings

log = structlog.get_logger("remediator.process")
PR_SET_DUMPABLE = 4  # <linux/prctl.h>


def protect(settings: Settings) -> bool:
    """Make the process undumpable unless the settings say not to; True when it is now."""
    if settings.dumpable:
        log.warning(
            "process.dumpable",
            message="REMEDIATOR_DUMPABLE=true: processes of this user (command.run scripts "
            "included) can read the service's environment, memory and descriptors; for debugging only",
        )
        return False
    if not sys.platform.startswith("linux"):
        log.warning(
            "process.dumpable",
            message=f"PR_SET_DUMPABLE exists on Linux only, not on {sys.platform}: processes of "
            "this user (command.run scripts included) may read the service's memory",
        )
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        error = ctypes.get_errno()
        log.error("process.dumpable", message=f"prctl(PR_SET_DUMPABLE, 0) failed: errno {error}")
        return False
    log.info(
        "process.undumpable",
        message="other processes of this user (command.run scripts included) cannot read the "
        "service's /proc environ, mem or fd, nor attach to it; core dumps and py-spy are off too "
        "(REMEDIATOR_DUMPABLE=true turns this off for debugging)",
    )
    return True
