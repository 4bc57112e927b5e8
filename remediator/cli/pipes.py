"""A reader that stops reading (``remediator simulate | head``) ends the command quietly."""

from __future__ import annotations

import os
import sys

SIGPIPE_EXIT = 141  # 128 + SIGPIPE: what a shell reports for `cat big | head`


def reader_gone() -> int:
    """Point stdout at /dev/null, so the interpreter's last flush at exit finds no closed
    pipe to complain about (no traceback, no "Exception ignored"); the exit code to use."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a file (captured in a test): nothing to flush
        pass
    return SIGPIPE_EXIT
