"""The command line in this process: ``main(argv)`` with exactly the REMEDIATOR_* variables
given, run from the repository (as a shell in it would), its output captured. Only the
one smoke test in tests/cli/test_ctl.py starts the installed command as a process."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from remediator.cli.main import main
from tests.support.procs import ROOT


@dataclass(frozen=True)
class Ran:
    """What ``remediator ARGS`` did: named as ``subprocess.CompletedProcess`` names it."""

    returncode: int
    stdout: str
    stderr: str


def run_main(*args: str, env: Mapping[str, str] | None = None, cwd: Path = ROOT) -> Ran:
    """``remediator ARGS`` with these REMEDIATOR_* variables (``env``) and no other."""
    saved_env, saved_cwd = dict(os.environ), Path.cwd()
    out, err = io.StringIO(), io.StringIO()
    for name in [n for n in os.environ if n.upper().startswith("REMEDIATOR_")]:
        del os.environ[name]
    os.environ.update(env or {})
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse's usage errors
                code = exc.code if isinstance(exc.code, int) else 2
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return Ran(code, out.getvalue(), err.getvalue())
