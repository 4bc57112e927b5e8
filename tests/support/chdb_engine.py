"""ClickHouse 26 in-process (PyPI's ``chdb-core``), in a child process, for SQL tests.

Debian's ClickHouse is 18.16; chdb embeds a current ClickHouse (``clickhouse-local``
as a library). With a config file naming a ZooKeeper it runs ``ReplicatedMergeTree``
tables, ``system.replicas`` and ``SYSTEM RESTART/RESTORE REPLICA`` against it.

Each :class:`ChdbProcess` is one Python child that owns one chdb engine on one data
path and answers statements one at a time over its stdin/stdout (one JSON line
each way). The child runs in its own process because closing an engine with a
replicated table attached can hang: :meth:`ChdbProcess.kill` ends it with SIGKILL,
and every statement has a timeout. Limits of the in-process engine (the tests
document them): it has no interserver port, so a replicated table never becomes
writable (``is_readonly`` stays 1, INSERT waits); ``system.zookeeper`` does not
exist (Keeper is read with a ZooKeeper client instead).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.procs import python_env

_CODE = re.compile(r"Code: (\d+)\. ")


def require_chdb() -> str:
    """chdb's engine version; skip locally when chdb-core is missing, fail in CI (CI=true)."""
    try:
        import chdb
    except ImportError:
        message = "chdb-core is not installed (pip install -e '.[test]')"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " and CI=true forbids skipping", pytrace=False)
        pytest.skip(message)
    return str(chdb.engine_version)


def keeper_config(root: Path, zookeeper_port: int, *, replica: str = "r1") -> Path:
    """A ClickHouse config for chdb: one ZooKeeper node, and the ``{replica}`` macro."""
    path = root / "chdb-config.xml"
    path.write_text(
        "<clickhouse>\n"
        f"  <zookeeper><node><host>127.0.0.1</host><port>{zookeeper_port}</port></node>"
        "<session_timeout_ms>3000</session_timeout_ms></zookeeper>\n"
        f"  <macros><shard>1</shard><replica>{replica}</replica></macros>\n"
        "</clickhouse>\n",
        encoding="utf-8",
    )
    return path


@dataclass
class Answer:
    """What chdb answered to one statement: columns and rows, or the error (code, message)."""

    sql: str
    columns: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    error: str = ""
    code: int = 0

    @property
    def ok(self) -> bool:
        return not self.error

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


class ChdbTimeout(Exception):
    """A statement got no answer in time (the child is killed)."""


class ChdbProcess:
    """One chdb engine in a child process, on ``path`` (with ``config``, if given)."""

    def __init__(self, path: Path, config: Path | None = None) -> None:
        target = f"file:{path}" + (f"?config-file={config}" if config else "")
        self.log = path.parent / f"{path.name}.chdb.log"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-u", __file__, target],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=python_env(),
            )

    def query(self, sql: str, timeout: float = 20.0) -> Answer:
        """Run one statement; its answer, or :class:`ChdbTimeout` (and the child is killed)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(sql).encode() + b"\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self.kill()
            raise ChdbTimeout(f"chdb gave no answer to {sql!r} within {timeout}s")
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            raise RuntimeError(f"chdb child exited ({code}) on {sql!r}; see {self.log}")
        return Answer(sql=sql, **json.loads(line))

    def kill(self) -> None:
        """SIGKILL: closing an engine with replicated tables can hang, and nothing is left to save."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()

    def __enter__(self) -> ChdbProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


def _serve(target: str) -> None:  # pragma: no cover - runs in the child
    import chdb

    conn = chdb.connect(target)
    for line in sys.stdin:
        sql = json.loads(line)
        answer: dict[str, Any]
        try:
            text = conn.query(sql, "JSONCompact").bytes().decode()
        except Exception as exc:
            message = str(exc)
            found = _CODE.search(message)
            answer = {"error": message, "code": int(found.group(1)) if found else 0}
        else:
            data = json.loads(text) if text.strip() else {}
            answer = {
                "columns": [col["name"] for col in data.get("meta", [])],
                "rows": data.get("data", []),
            }
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    os._exit(0)  # never close the engine: see the module's docstring


if __name__ == "__main__":  # pragma: no cover
    _serve(sys.argv[1])
