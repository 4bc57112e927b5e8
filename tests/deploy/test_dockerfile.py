"""The Dockerfile's rules, checked by parsing it (fast, and with no container engine), and its
HEALTHCHECK command run for real against a live service. tests/release/test_image.py builds
the image with podman and runs it."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.procs import PYTHON, ROOT, free_port, python_env, stop_process, wait_port

BUILD_TOOLS = (
    "build-essential",
    "gcc",
    "g++",
    "make",
    "clang",
    "cargo",
    "rustc",
    "python3-dev",
    "libc6-dev",
    "git",
    "curl",
    "wget",
)


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        return [value for key, value in self.instructions if key == keyword]


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with line continuations joined."""
    logical, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            parts = rest.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else ""
            stages.append(Stage(base=_expand(parts[0], args), name=name))
        elif not stages and keyword == "ARG":
            key, _, default = rest.partition("=")
            args[key] = default
        else:
            stages[-1].instructions.append((keyword, rest))
    return args, stages


def _expand(value: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), value)


def exec_form(value: str) -> list[str]:
    parsed = json.loads(value)
    assert isinstance(parsed, list), f"{value!r} should be the exec (JSON array) form"
    return [str(item) for item in parsed]


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse((ROOT / "Dockerfile").read_text(encoding="utf-8"))[1]


def test_multi_stage_on_slim_python_311_pinned_by_digest(stages: list[Stage]) -> None:
    """The default base (the BASE build argument) is the official slim Python 3.11 image,
    fully qualified (podman resolves no short name here) and pinned by digest."""
    assert len(stages) >= 2
    for stage in stages:
        assert re.fullmatch(
            r"docker\.io/library/python:3\.11(\.\d+)?-slim(-\w+)?@sha256:[0-9a-f]{64}", stage.base
        ), stage.base
    final = stages[-1]
    copies = final.args("COPY")
    assert any(c.startswith(f"--from={stages[0].name} ") for c in copies), (
        "the final stage copies the built virtualenv from the build stage"
    )


def test_build_stage_installs_exactly_the_lock_without_groups(stages: list[Stage]) -> None:
    """uv installs uv.lock's runtime set (no test or lint group) and fails when pyproject.toml
    and the lock disagree; pip only installs uv itself, by hash."""
    runs = [run for stage in stages[:-1] for run in stage.args("RUN")]
    syncs = [re.findall(r"uv sync ([^&;|]*)", run) for run in runs]
    syncs_flat = [args.split() for found in syncs for args in found]
    assert syncs_flat, "the build stage runs uv sync"
    for args in syncs_flat:
        assert {"--locked", "--no-default-groups"} <= set(args), args
        assert not {"--group", "--all-groups", "--extra", "--all-extras", "--dev"} & set(args), args
    assert "--no-editable" in syncs_flat[-1], "the project is installed, not linked to /src"
    for run in runs:
        for pip in re.findall(r"pip3? install ([^&;|]*)", run):
            assert pip.split() == ["--no-deps", "--require-hashes", "-r", "/tmp/uv-requirements.txt"], pip
    copied = [c.split() for stage in stages[:-1] for c in stage.args("COPY")]
    assert ["scripts/uv-requirements.txt", "/tmp/uv-requirements.txt"] in copied
    assert any("uv.lock" in c for c in copied)


def test_final_stage_has_no_build_tools(stages: list[Stage]) -> None:
    final = stages[-1]
    for run in final.args("RUN"):
        words = set(re.split(r"[\s;&|]+", run))
        found = [tool for tool in BUILD_TOOLS if tool in words]
        assert not found, f"the final stage installs build tools {found}: {run!r}"
        assert not re.search(r"\bpip3?\s+install\b", run), "dependencies come from the build stage"


def test_runs_as_a_non_root_user(stages: list[Stage]) -> None:
    final = stages[-1]
    users = final.args("USER")
    assert users, "the final stage sets USER"
    uid = users[-1].split(":", 1)[0]
    assert uid.isdigit() and int(uid) != 0, "a numeric non-root uid (runAsNonRoot can verify it)"
    keywords = [key for key, _ in final.instructions]
    assert keywords.index("ENTRYPOINT") > max(i for i, k in enumerate(keywords) if k == "USER")


def test_entry_point_is_remediator_serve(stages: list[Stage]) -> None:
    final = stages[-1]
    command = exec_form(final.args("ENTRYPOINT")[-1]) + exec_form(final.args("CMD")[-1])
    assert command == ["remediator", "serve"]
    env = " ".join(final.args("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env, "no .pyc writes: the root FS may be read-only"
    assert "EXPOSE" in [key for key, _ in final.instructions]


def healthcheck_command(stages: list[Stage]) -> list[str]:
    check = stages[-1].args("HEALTHCHECK")
    assert len(check) == 1
    options, _, command = check[0].partition("CMD ")
    assert re.search(r"--interval=\S+", options) and re.search(r"--timeout=\S+", options)
    return exec_form(command.strip())


def test_healthcheck_needs_only_python(stages: list[Stage]) -> None:
    command = healthcheck_command(stages)
    assert command[0] == "python" and command[1] == "-c"
    assert "/healthz" in command[2]
    assert not {"curl", "wget"} & set(shlex.split(" ".join(command)))


def test_healthcheck_command_works_against_the_service(stages: list[Stage], tmp_path: Path) -> None:
    """Run the HEALTHCHECK's python one-liner against a real ``remediator serve``."""
    code = healthcheck_command(stages)[2]
    port = free_port()
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules: []\n", encoding="utf-8")
    env = python_env(
        REMEDIATOR_PORT=str(port),
        REMEDIATOR_WEBHOOK_TOKEN="a-token-of-16-chars-or-more",
        REMEDIATOR_RULES=str(rules),
        REMEDIATOR_HOST="127.0.0.1",
    )
    env.pop("REMEDIATOR_REDIS_URL", None)
    proc = subprocess.Popen(
        [PYTHON, "-m", "remediator", "serve"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port, timeout=60)
        ok = subprocess.run([PYTHON, "-c", code], env=env, timeout=30, check=False)
        assert ok.returncode == 0
    finally:
        stop_process(proc)
    down = subprocess.run([PYTHON, "-c", code], env=env, timeout=30, check=False, capture_output=True)
    assert down.returncode != 0, "the check fails when nothing answers"


def _glob_regex(glob: str) -> re.Pattern[str]:
    """Docker's .dockerignore globs: ``*`` and ``?`` stay within a path segment, ``**``
    spans segments."""
    out, i = "", 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif glob.startswith("**", i):
            out, i = out + ".*", i + 2
        elif glob[i] in "*?":
            out, i = out + ("[^/]*" if glob[i] == "*" else "[^/]"), i + 1
        else:
            out, i = out + re.escape(glob[i]), i + 1
    return re.compile(out)


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or a parent directory wins."""
    excluded = False
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _glob_regex((pattern[1:] if negate else pattern).strip("/"))
        if any(regex.fullmatch(candidate) for candidate in candidates):
            excluded = not negate
    return excluded


def test_dockerignore_keeps_the_context_to_what_is_copied(stages: list[Stage]) -> None:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = [p.strip() for p in lines if p.strip() and not p.startswith("#")]
    sources = []
    for stage in stages:
        for copy in stage.args("COPY"):
            if copy.startswith("--from="):
                continue
            sources.extend(copy.split()[:-1])
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
        assert not dockerignore_excludes(source, patterns), f"{source} is excluded"
        if (ROOT / source).is_dir():
            assert not dockerignore_excludes(f"{source}/__init__.py", patterns)
    for private in (
        ".git/config",
        ".venv/bin/python",
        "tests/test_x.py",
        ".env",
        "remediator/__pycache__/app.cpython-311.pyc",
        "deploy/base/rules.yaml",
        ".run/tokens.env",
        ".cache/image/base.tar",
        "scripts/run.sh",
    ):
        assert dockerignore_excludes(private, patterns), f"{private} would be in the context"
