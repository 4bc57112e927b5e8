"""``command.run``: run a fixed program with arguments, never through a shell.

For runbook scripts that already exist (prometheus-am-executor's model). The rule
fixes the program; alert values reach it only as whole arguments and as
environment variables, never parsed by a shell. The child gets a minimal
environment (none of the service's variables or secrets), its own process group,
and is stopped as a group (SIGTERM, then SIGKILL) on timeout, lease loss or
shutdown. It inherits descriptors 0, 1 and 2 only, under uvloop too. The tails of its
output go into the result (audit, Slack).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, Field, field_serializer, model_validator

from remediator import Alert, Checked, Context, Handler, HandlerParams, Result, RuleDuration, handler, seconds

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The only variables taken from the service's own environment: none of them is a secret.
# KUBERNETES_SERVICE_* let kubectl find the API in a cluster (the token is a file).
PASSED_THROUGH = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TZ",
    "TMPDIR",
    "KUBERNETES_SERVICE_HOST",
    "KUBERNETES_SERVICE_PORT",
)
DRY_RUN_VARIABLE = "REMEDIATOR_DRY_RUN"
SECRET_WORDS = ("TOKEN", "PASSWORD", "SECRET", "KEY")
REDACTED = "[redacted]"
_MIN_SECRET = 4  # shorter values are not redacted from the output (they would blank it)
_SHOWN_IN_MESSAGE = 400  # characters of output quoted in a failure's message
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_UNSAFE = re.compile(r"[^A-Z0-9_]")
_RESERVED = ("ALERT_", "REMEDIATOR_")
_REAP_WITHIN = 1.0  # seconds to wait, after the SIGKILL, until the group is gone
# Put by the template finalizer before a substituted value that starts with "-", so the
# params can tell an option an alert chose from one the rule wrote (a Unicode noncharacter:
# never in text; one arriving in a label is replaced before it could pass for ours).
OPTION_MARK = "\ufdd0"


def _argument(value: str) -> str:
    if "\0" in value:
        raise ValueError(f"{value!r} has a NUL character, which no program argument can hold")
    return value


def _env_name(value: str) -> str:
    if not _ENV_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a variable name (letters, digits and '_', not first a digit)")
    if value.upper().startswith(_RESERVED):
        raise ValueError(f"{value!r}: ALERT_* and REMEDIATOR_* variables are set by the handler")
    return value


def option_marked(value: Any) -> str:
    """Template finalizer of argv items: marks a substituted value that starts with ``-``."""
    text = str(value).replace(OPTION_MARK, "\ufffd")
    return OPTION_MARK + text if text.startswith("-") else text


def unmark_options(data: Any, keys: tuple[str, ...]) -> Any:
    """``data`` (raw params) with the marks of :func:`option_marked` removed from the lists
    ``keys``; raises ValueError for an item an alert value made start with ``-``, unless
    ``allow_option_args`` is true."""
    if not isinstance(data, dict):
        return data
    allowed = data.get("allow_option_args") is True
    out = dict(data)
    for key in keys:
        items = data.get(key)
        if not isinstance(items, list):
            continue
        for index, item in enumerate(items):
            if isinstance(item, str) and item.startswith(OPTION_MARK) and not allowed:
                shown = item.replace(OPTION_MARK, "")
                raise ValueError(
                    f"{key}[{index}] {shown!r} starts with '-' from a value of the alert: the program "
                    "would take it as an option; refused (set allow_option_args: true if the alert "
                    "may choose options)"
                )
        out[key] = [item.replace(OPTION_MARK, "") if isinstance(item, str) else item for item in items]
    return out


def _directory(value: str) -> str:
    if not os.path.isabs(value) or "\0" in value:
        raise ValueError(f"{value!r} is not an absolute path")
    return value


Argument = Annotated[str, AfterValidator(_argument)]
EnvName = Annotated[str, AfterValidator(_env_name)]
ExitCode = Annotated[int, Field(ge=0, le=255)]


class CommandParams(HandlerParams):
    argv: list[Argument] = Field(min_length=1)
    """the program (an absolute path; no `PATH` lookup) and its arguments. `argv[0]` must be written in the
    rule: a template there is an error in `remediator check`. Each later item may be templated and is
    passed as exactly one argument, whatever the label holds (spaces, quotes, `;`, `$(...)`, newlines):
    nothing is split or parsed by a shell. A NUL character is refused
    """
    env: dict[EnvName, Argument] = Field(default_factory=dict)
    """extra variables, values templated. Names are `[A-Za-z_][A-Za-z0-9_]*`; `ALERT_*` and `REMEDIATOR_*`
    are the handler's and refused
    """
    cwd: Annotated[str, AfterValidator(_directory)] | None = None
    """absolute path of the working directory (unset: inherited)"""
    timeout: RuleDuration = Field(default=60.0, gt=0, le=3600)
    """duration, at most `1h`; also bounded by the rule's `timeout`"""
    grace: RuleDuration = Field(default=5.0, gt=0, le=60)
    """duration, at most `1m`: between SIGTERM and SIGKILL when the program is stopped"""
    ok_exit_codes: list[ExitCode] = Field(default_factory=lambda: [0], min_length=1)
    """exit codes that mean `succeeded`"""
    noop_exit_codes: list[ExitCode] = Field(default_factory=list)
    """exit codes that mean "nothing to do" (`noop`), e.g. a precheck that finds the target healthy;
    disjoint from `ok_exit_codes`
    """
    max_output: int = Field(default=64 * 1024, ge=256, le=1024 * 1024)
    """how much of stdout and of stderr is kept, each: its last `max_output` bytes, decoded as UTF-8
    (invalid bytes replaced); 256 to 1048576
    """
    run_in_dry_run: bool = False
    """run the program in a dry run too, with `REMEDIATOR_DRY_RUN=1` (it must then only print its plan)"""
    allow_option_args: bool = False
    """let a value from the alert start an argument with `-` (see **Options** below)"""

    @model_validator(mode="before")
    @classmethod
    def _options(cls, data: Any) -> Any:
        return unmark_options(data, ("argv",))

    @field_serializer("env", when_used="json")
    def _shown_env(self, env: dict[str, str]) -> dict[str, str]:
        """As simulate and the API show params: secret values redacted."""
        return self.shown_env()

    @model_validator(mode="after")
    def _consistent(self) -> CommandParams:
        if not os.path.isabs(self.argv[0]):
            raise ValueError(
                f"argv[0] must be the program's absolute path (no PATH lookup), got {self.argv[0]!r}"
            )
        if both := sorted(set(self.ok_exit_codes) & set(self.noop_exit_codes)):
            raise ValueError(f"exit code(s) {both} are in both ok_exit_codes and noop_exit_codes")
        return self

    def secrets(self) -> list[str]:
        """Values of ``env`` whose names say they are secrets: never shown."""
        return [v for k, v in self.env.items() if any(w in k.upper() for w in SECRET_WORDS)]

    def shown_env(self) -> dict[str, str]:
        hidden = set(self.secrets())
        return {k: REDACTED if v in hidden else v for k, v in self.env.items()}


def _has_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _check(raw: dict[str, Any]) -> tuple[str, str] | None:
    """The program is the rule's: argv[0] may not come from a template (``remediator check``)."""
    argv = raw.get("argv")
    if isinstance(argv, list) and argv and _has_template(argv[0]):
        return "argv", (
            f"argv[0] {argv[0]!r} is a template: the program must be written in the rule "
            "(alert values may only be later arguments)"
        )
    for key in (
        "cwd",
        "timeout",
        "grace",
        "ok_exit_codes",
        "noop_exit_codes",
        "max_output",
        "run_in_dry_run",
        "allow_option_args",
    ):
        if _has_template(raw.get(key)) or (
            isinstance(raw.get(key), list) and any(_has_template(v) for v in raw[key])
        ):
            return key, "must be written in the rule, not templated"
    return None


# ---- the child's environment ------------------------------------------------------------------


def sanitised(name: str) -> str:
    """``pod-name`` -> ``POD_NAME``: a label or annotation name as a variable name part."""
    return _UNSAFE.sub("_", name.upper())


def _value(text: str) -> str:
    """An environment value: NUL cannot be passed, lone surrogates cannot be encoded."""
    return text.replace("\0", "\ufffd").encode("utf-8", "replace").decode("utf-8")


def alert_env(alert: Alert) -> dict[str, str]:
    """The alert as am-executor-style variables. Of two names that sanitise alike, the first sorted wins."""
    env = {
        "ALERT_NAME": alert.name,
        "ALERT_STATUS": alert.status,
        "ALERT_FINGERPRINT": alert.fingerprint,
        "ALERT_STARTS_AT": alert.starts_at.isoformat(),
    }
    for prefix, values in (("ALERT_LABEL_", alert.labels), ("ALERT_ANNOTATION_", alert.annotations)):
        for name in sorted(values):
            env.setdefault(prefix + sanitised(name), values[name])
    return {k: _value(v) for k, v in env.items()}


def child_env(params: CommandParams, alert: Alert, *, dry_run: bool) -> dict[str, str]:
    base = {k: os.environ[k] for k in PASSED_THROUGH if os.environ.get(k)}
    base.setdefault("PATH", DEFAULT_PATH)
    env = {**base, **alert_env(alert), **{k: _value(v) for k, v in params.env.items()}}
    if dry_run:
        env[DRY_RUN_VARIABLE] = "1"
    return env


# ---- running it -------------------------------------------------------------------------------


class Tail:
    """The last ``limit`` bytes of a stream (plus some, to redact a secret cut at the edge)."""

    def __init__(self, limit: int, margin: int) -> None:
        self.limit, self.keep = limit, limit + margin
        self.data = bytearray()
        self.total = 0

    async def drain(self, stream: asyncio.StreamReader | None) -> None:
        if stream is None:
            return
        while chunk := await stream.read(65536):
            self.total += len(chunk)
            self.data += chunk
            if len(self.data) > self.keep:
                del self.data[: len(self.data) - self.keep]

    def text(self, secrets: list[str]) -> str:
        text = self.data.decode("utf-8", "replace")
        for secret in secrets:
            if len(secret) >= _MIN_SECRET:
                text = text.replace(secret, REDACTED)
        if self.total > self.limit:
            text = text[-self.limit :]
        return text

    @property
    def truncated(self) -> bool:
        return self.total > self.limit


def _signal_group(pgid: int, sig: int) -> bool:
    """Signal the whole process group (0: only look); False when none of it is left."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


async def stop_group(process: asyncio.subprocess.Process, grace: float) -> None:
    """Stop what is left of the program's process group and reap the program.

    SIGTERM to the group, SIGKILL after ``grace`` (also when cancelled meanwhile).
    Also called after a normal exit: a background child it left behind is stopped too.
    """
    pgid = process.pid  # start_new_session: the program leads its own group
    if _signal_group(pgid, signal.SIGTERM):
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await process.wait()
                    await _group_gone(pgid)
        finally:  # a second cancellation does not skip the SIGKILL
            _signal_group(pgid, signal.SIGKILL)
    await process.wait()  # asyncio's child watcher reaps it even if this is cancelled
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_REAP_WITHIN):
            await _group_gone(pgid)


async def _group_gone(pgid: int) -> None:
    """Until no process of the group is left, reaping those that became ours."""
    while _signal_group(pgid, 0):
        reap_adopted(pgid)
        await asyncio.sleep(0.02)


def reap_adopted(pgid: int) -> None:
    """Reap the group's dead processes whose parent we became.

    The program's children are re-parented to PID 1 when it dies. In a container
    remediator *is* PID 1 (or a subreaper), and nothing else would reap them: each
    would stay a zombie. Only members of this group that are our children and dead
    are reaped, by pid, so asyncio's own child watcher is never robbed.
    """
    me = os.getpid()
    with contextlib.suppress(OSError):
        entries = os.listdir("/proc")
        for entry in entries:
            if entry.isdigit() and _adopted_zombie(entry, pgid, me):
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(int(entry), os.WNOHANG)


def _adopted_zombie(pid: str, pgid: int, me: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[0] == "Z" and int(fields[1]) == me and int(fields[2]) == pgid


@dataclass(frozen=True)
class Finished:
    """How the program ended: its exit code (negative: killed by that signal), None on timeout."""

    code: int | None
    out: Tail
    err: Tail


def only_standard_fds() -> None:
    """In the child, between fork and exec: every descriptor above 2 closes at exec.

    asyncio's subprocesses close them (``close_fds``), uvloop's do not: without this the
    program would inherit the service's sockets and pipes. They are marked close-on-exec
    rather than closed, so a failed exec is still reported through the spawner's own pipe.
    """
    try:
        fds: Iterable[int] = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:  # no /proc: every possible descriptor
        fds = range(3, min(os.sysconf("SC_OPEN_MAX"), 65536))
    for fd in fds:
        if fd > 2:
            with contextlib.suppress(OSError):
                os.set_inheritable(fd, False)


async def run_program(params: CommandParams, env: dict[str, str], within: float) -> Finished:
    margin = max((len(s.encode()) for s in params.secrets()), default=0)
    out, err = Tail(params.max_output, margin), Tail(params.max_output, margin)
    spawning = asyncio.ensure_future(
        asyncio.create_subprocess_exec(
            *params.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=params.cwd,
            env=env,
            start_new_session=True,
            close_fds=True,  # asyncio's loop (uvloop ignores it: only_standard_fds does it there)
            preexec_fn=only_standard_fds,
        )
    )
    try:
        process = await asyncio.shield(spawning)
    except asyncio.CancelledError:  # cancelled while it started: it may run already, stop it
        with contextlib.suppress(OSError):
            await stop_group(await spawning, params.grace)
        raise
    readers = asyncio.gather(out.drain(process.stdout), err.drain(process.stderr))
    timed_out = False
    try:
        async with asyncio.timeout(within):
            await process.wait()
    except TimeoutError:
        timed_out = True
    finally:  # on cancellation (lease lost, shutdown) too: nothing of it is left running
        await stop_group(process, params.grace)
        await _drained(readers, params.grace)
    return Finished(None if timed_out else process.returncode, out, err)


async def _drained(readers: asyncio.Future[Any], grace: float) -> None:
    """The output read to its end; given up after ``grace`` (a process that left the group
    may still hold the pipes open)."""
    try:
        async with asyncio.timeout(grace):
            await asyncio.shield(readers)
    except TimeoutError:
        pass
    finally:
        if not readers.done():
            readers.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await readers


# ---- the handler ------------------------------------------------------------------------------


def _describe(params: CommandParams) -> list[str]:
    env = " ".join(f"{k}={v}" for k, v in params.shown_env().items())
    codes = ", ".join(map(str, params.ok_exit_codes))
    noop = f"; noop on exit {', '.join(map(str, params.noop_exit_codes))}" if params.noop_exit_codes else ""
    where = f" in {params.cwd}" if params.cwd else ""
    return [
        f"exec {params.argv!r}{where} with the alert as ALERT_* variables" + (f" and {env}" if env else ""),
        f"expect exit {codes}{noop}; stop after {seconds(params.timeout)} (SIGTERM, SIGKILL "
        f"after {seconds(params.grace)})",
    ]


def _quoted(finished: Finished, secrets: list[str]) -> str:
    text = (finished.err.text(secrets) or finished.out.text(secrets)).strip()
    if len(text) > _SHOWN_IN_MESSAGE:
        text = "..." + text[-_SHOWN_IN_MESSAGE:]
    return f": {text}" if text else ""


@dataclass(frozen=True)
class Ran:
    """The program's end, and the time it was given."""

    finished: Finished
    within: float


@handler(
    "command.run", params=CommandParams, describe=_describe, check=_check, escapes={"argv": option_marked}
)
class CommandRun(Handler[CommandParams, None, Ran]):
    """Run a fixed program with the alert as arguments and environment; judge it by its exit code."""

    async def precheck(self, params: CommandParams, ctx: Context) -> Checked[None]:
        return Checked(f"not read first: {params.argv[0]} decides by its exit code", None)

    async def act(self, params: CommandParams, ctx: Context, seen: None) -> Ran | Result:
        plan = _describe(params)
        if ctx.dry_run and not params.run_in_dry_run:
            return Result.dry_run(plan, "dry run: the program was not run (run_in_dry_run is off)")
        program = params.argv[0]
        env = child_env(params, ctx.alert, dry_run=ctx.dry_run)
        within = min(params.timeout, max(ctx.remaining(), 0.1))
        ctx.step("act", plan[0], dry_run=ctx.dry_run)
        try:
            finished = await run_program(params, env, within)
        except OSError as exc:  # not found, not executable, bad cwd
            return Result.failed(f"cannot run {program}: {exc.strerror or exc}", argv=params.argv)
        return Ran(finished, within)

    async def verify(self, params: CommandParams, ctx: Context, acted: Ran) -> Result:
        finished, program, plan = acted.finished, params.argv[0], _describe(params)
        secrets = params.secrets()
        details: dict[str, Any] = {
            "argv": params.argv,
            "env": params.shown_env(),
            "exit_code": finished.code,
            "stdout": finished.out.text(secrets),
            "stderr": finished.err.text(secrets),
            "stdout_bytes": finished.out.total,
            "stderr_bytes": finished.err.total,
            "truncated": finished.out.truncated or finished.err.truncated,
        }
        if finished.code is None:
            return Result.failed(
                f"{program} did not finish within {seconds(acted.within)}; its process group was stopped"
                f"{_quoted(finished, secrets)}",
                retryable=True,
                **details,
            )
        code = finished.code
        ctx.step("verify", f"{program} exited with {code}", exit_code=code)
        if code in params.noop_exit_codes:
            return Result.noop(f"{program} exited with {code}: nothing to do", **details)
        if code not in params.ok_exit_codes:
            reason = (
                f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with {code}"
            )
            return Result.failed(f"{program} {reason}{_quoted(finished, secrets)}", **details)
        if ctx.dry_run:
            return Result.dry_run(
                plan, f"dry run: {program} ran with {DRY_RUN_VARIABLE}=1 and exited with {code}", **details
            )
        return Result.succeeded(f"{program} exited with {code}", **details)
