"""``make demo`` / ``python -m demo``: the torghut incident, replayed end to end."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _pytest.outcomes import OutcomeException

from demo.scenario import Options, run_sync
from demo.summary import render, verdicts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__)
    parser.add_argument(
        "--workdir",
        type=Path,
        help="keep every server's files and logs here (default: a temporary directory, removed at the end)",
    )
    parser.add_argument(
        "--no-kill", action="store_true", help="do not SIGKILL the replica running the first repair"
    )
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="remediator-demo-"))
    print(
        "The 2026-01-01 torghut incident, replayed: ClickHouse replicas read-only after "
        "Keeper was lost,\nthe Flink job failed on its JDBC sink, the websocket ingester "
        "stuck, Jangar reading the wrong database.\nNo human in the loop.\n"
    )
    started = time.monotonic()
    try:
        report = run_sync(workdir, Options(kill_replica=not args.no_kill))
    except OutcomeException as exc:  # a required server binary is missing
        print(f"cannot run the demo: {exc.msg}", file=sys.stderr)
        return 2
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(render(report))
    print(
        f"\nThe demo took {time.monotonic() - started:.0f}s"
        + (f"; the servers' files and logs are in {workdir}" if args.workdir else "")
        + "."
    )
    return 0 if all(ok for ok, _ in verdicts(report)) else 1


if __name__ == "__main__":
    sys.exit(main())
