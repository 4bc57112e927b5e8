#!/usr/bin/env bash
# `make test-latest`: the newest release of every dependency, upper bounds ignored, in a
# throw-away venv; then lint and the unit tests. An upgrade is deliberate: run this, fix
# what it finds, then `make lock` (which stays within the bounds of pyproject.toml).
set -euo pipefail
uv=$1
venv=$(mktemp -d /tmp/remediator-latest.XXXXXX)
trap 'rm -rf "$venv"' EXIT
reqs=$venv/requirements.in
# pyproject's requirements with every upper bound dropped (lower bounds stay).
"${PYTHON:-python3}" - pyproject.toml > "$reqs" <<'PY'
import re, sys, tomllib
data = tomllib.load(open(sys.argv[1], "rb"))
deps = list(data["project"]["dependencies"])
for group in ("test", "lint"):
    deps += data["dependency-groups"][group]
for dep in deps:
    print(",".join(part for part in re.split(r"\s*,\s*", dep) if not re.search(r"<(?!=?\s*$)", part)))
PY
echo "test-latest: resolving the newest releases (bounds dropped) into $venv"
"$uv" venv --quiet "$venv/env"
VIRTUAL_ENV=$venv/env "$uv" pip install --quiet --upgrade -r "$reqs"
VIRTUAL_ENV=$venv/env "$uv" pip install --quiet --no-deps -e .
VIRTUAL_ENV=$venv/env "$uv" pip list --quiet 2>/dev/null | sed 's/^/  /' > "$venv/versions.txt"
echo "test-latest: versions that differ from uv.lock:"
"${PYTHON:-python3}" - uv.lock "$venv/versions.txt" <<'PY'
import re, sys, tomllib
locked = {p["name"]: p["version"] for p in tomllib.load(open(sys.argv[1], "rb"))["package"]}
for line in open(sys.argv[2]).read().splitlines()[2:]:
    parts = line.split()
    if len(parts) >= 2:
        name = re.sub(r"[-_.]+", "-", parts[0]).lower()
        if name in locked and locked[name] != parts[1]:
            print(f"  {name}: {locked[name]} -> {parts[1]}")
PY
bin=$venv/env/bin
"$bin/ruff" check remediator handlers tests demo
"$bin/ruff" format --check remediator handlers tests demo
"$bin/mypy"
"$bin/lint-imports"
"$bin/python" -m pytest -q tests/unit tests/rules tests/worker tests/api tests/cli
