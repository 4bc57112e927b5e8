"""Handlers for service-level tests, loaded by ``remediator serve`` processes with
``REMEDIATOR_HANDLER_MODULES='["handlers","tests.support.test_handlers"]'``.

``test.record`` appends one JSON line per start and per end of a run to ``path``
(one ``write`` per line on an O_APPEND file, so lines from several processes never
interleave), can sleep in between (to be killed, or to outlive its lease), can fail,
and can kill its own process (``crash: true``).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from typing import Any

from pydantic import Field

from remediator import Checked, Context, Handler, HandlerParams, Result, TemporaryError, handler


class RecordParams(HandlerParams):
    path: str
    sleep: float = Field(default=0.0, ge=0)
    fail: bool = False
    crash: bool = False  # SIGKILL the whole process mid-run, like an OOM kill
    crash_first: str = ""  # a marker file: SIGKILL in the precheck unless it exists (then made)
    label: str = ""  # names the step in its records


def _append(path: str, **record: Any) -> None:
    line = (json.dumps({**record, "pid": os.getpid(), "at": time.time()}) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _first_time(marker: str) -> bool:
    """True once: the marker file is made by the first call (O_EXCL), refused after."""
    try:
        os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except FileExistsError:
        return False
    return True


@handler("test.record", params=RecordParams)
class Record(Handler[RecordParams, None, None]):
    """Record the run in a file; sleep; succeed or fail as told."""

    async def precheck(self, params: RecordParams, ctx: Context) -> Checked[None]:
        if params.crash_first and _first_time(params.crash_first):
            os.kill(os.getpid(), signal.SIGKILL)  # before this step acted
        return Checked(f"records to {params.path}", None)

    async def act(self, params: RecordParams, ctx: Context, seen: None) -> Result | None:
        if ctx.dry_run:
            return Result.dry_run([f"record a run in {params.path}"])
        _append(params.path, phase="start", event_id=ctx.event_id, target=ctx.target, label=params.label)
        if params.crash:
            os.kill(os.getpid(), signal.SIGKILL)
        ctx.step("act", f"recording, then sleeping {params.sleep:g}s")
        await asyncio.sleep(params.sleep)
        if params.fail:
            _append(params.path, phase="failed", event_id=ctx.event_id, target=ctx.target)
            raise TemporaryError("failing on purpose (test.record fail: true)")
        return None

    async def verify(self, params: RecordParams, ctx: Context, acted: None) -> Result:
        _append(params.path, phase="end", event_id=ctx.event_id, target=ctx.target)
        return Result.succeeded("recorded")
