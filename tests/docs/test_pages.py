"""The docs site's pages say true things: every rules file and alert payload shown on a page
is accepted by `remediator check` and the webhook model, the tutorial's commands print what
the tutorial shows, and the Slack app manifest asks for the scopes the code needs."""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from remediator.models import WebhookPayload
from tests.support.procs import PYTHON, ROOT, python_env

DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[a-z]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```", re.M | re.S)


def blocks(page: Path, lang: str) -> list[str]:
    """The fenced blocks of ``lang`` on ``page``, dedented."""
    text = page.read_text(encoding="utf-8")
    return [textwrap.dedent(m["body"]) for m in FENCE.finditer(text) if m["lang"] == lang]


def rules_document(block: str) -> dict[str, Any] | None:
    """A YAML block as a rules file: a whole file (``rules:``, ``maintenance_windows:``), or a
    list of rules; None for any other YAML (manifests, settings) or a block with elisions."""
    try:
        data = yaml.safe_load(block)
    except yaml.YAMLError:
        return None
    if isinstance(data, dict) and ({"rules", "maintenance_windows"} & set(data)):
        return {"rules": [], **data}
    if isinstance(data, list) and data and all(isinstance(r, dict) and "handler" in r for r in data):
        return {"rules": data}
    return None


def documented_rules() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for page in PAGES:
        for index, block in enumerate(blocks(page, "yaml")):
            document = rules_document(block)
            if document is not None:
                found.append((f"{page.relative_to(DOCS)}#{index}", document))
    return found


def remediator(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "remediator", *args],
        cwd=cwd,
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_pages_show_rules_files() -> None:
    """The check below sees the rules of the tutorial and the how-to pages (the parser
    above does not quietly find nothing)."""
    names = {rule["name"] for _, document in documented_rules() for rule in document["rules"]}
    assert {"checkout-restart", "restart-checkout", "restart-pod", "clean-disk"} <= names
    assert any("maintenance_windows" in document for _, document in documented_rules())


@pytest.mark.parametrize(
    ("where", "document"), documented_rules(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_rules_file_on_a_page_passes_check(
    where: str, document: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    result = remediator("check", str(path), cwd=tmp_path)
    assert result.returncode == 0, f"{where}: {result.stdout}{result.stderr}"


def test_every_alertmanager_payload_on_a_page_is_valid() -> None:
    payloads = [
        json.loads(block)
        for page in PAGES
        for block in blocks(page, "json")
        if '"alerts"' in block and '"version"' in block
    ]
    assert payloads, "no payload found on the pages"
    for data in payloads:
        WebhookPayload.model_validate(data)


def test_the_quick_start_page_shows_the_readmes_block() -> None:
    """tests/release/test_run.py runs the README's quick start; the docs page shows the same."""
    marked = re.compile(r"<!-- quick-start:[^\n]*-->\n```sh\n(.*?)\n```", re.S)
    readme = marked.search((ROOT / "README.md").read_text(encoding="utf-8"))
    page = marked.search((DOCS / "quickstart.md").read_text(encoding="utf-8"))
    assert readme and page
    assert page[1] == readme[1]


# ---- the tutorial, as a reader types it ---------------------------------------------------------
TUTORIAL = DOCS / "tutorial.md"


def _tutorial_files(root: Path) -> tuple[Path, Path]:
    """The tutorial's rules file and alert, saved where it says (byte for byte)."""
    (rules,) = [b for b in blocks(TUTORIAL, "yaml") if "name: checkout-restart" in b]
    (alert,) = [b for b in blocks(TUTORIAL, "json") if "CheckoutCrashLooping" in b]
    overlay = root / "deploy" / "overlays" / "shop"
    (overlay / "tests").mkdir(parents=True)
    (overlay / "rules.yaml").write_text(rules, encoding="utf-8")
    (overlay / "tests" / "checkout-firing.json").write_text(alert, encoding="utf-8")
    return overlay / "rules.yaml", overlay / "tests" / "checkout-firing.json"


def _shown(command: str) -> list[str]:
    """What the tutorial's console blocks show after ``$ <command...>`` (up to the next $)."""
    for block in blocks(TUTORIAL, "console"):
        lines = block.splitlines()
        for index, line in enumerate(lines):
            if line.startswith("$ ") and command in line:
                rest = lines[index + 1 :]
                end = next((i for i, later in enumerate(rest) if later.startswith("$ ")), len(rest))
                return rest[:end]
    raise AssertionError(f"the tutorial shows no `{command}`")


def _matches(shown: str, printed: list[str]) -> bool:
    """A line shown on the page is printed as is; one shortened with `...` starts and ends the same."""
    if "..." not in shown:
        return shown in printed
    parts = shown.split("...")
    return any(line.startswith(parts[0].rstrip()) and line.endswith(parts[-1].lstrip()) for line in printed)


def test_the_tutorials_check_and_simulate_print_what_it_shows(tmp_path: Path) -> None:
    _tutorial_files(tmp_path)
    rules = "deploy/overlays/shop/rules.yaml"
    checked = remediator("check", "--strict", rules, cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.splitlines() == _shown("remediator check --strict")

    simulated = remediator(
        "simulate", "deploy/overlays/shop/tests/checkout-firing.json", "--rules", rules, cwd=tmp_path
    )
    assert simulated.returncode == 0, simulated.stdout + simulated.stderr
    printed = simulated.stdout.splitlines()
    shown = _shown("remediator simulate")
    assert len(shown) == len(printed)
    assert [line for line in shown if not _matches(line, printed)] == []


def test_the_tutorials_errors_are_what_check_and_simulate_say(tmp_path: Path) -> None:
    rules_path, alert_path = _tutorial_files(tmp_path)
    text = TUTORIAL.read_text(encoding="utf-8")
    rules_path.write_text(rules_path.read_text().replace("cooldown: 30m", "cooldown: 30"), encoding="utf-8")
    checked = remediator("check", "deploy/overlays/shop/rules.yaml", cwd=tmp_path)
    assert checked.returncode == 1
    assert checked.stderr.strip() in text, checked.stderr

    _tutorial_files(tmp_path / "again")
    alert = json.loads(alert_path.read_text())
    del alert["alerts"][0]["labels"]["deployment"]
    alert_path.write_text(json.dumps(alert), encoding="utf-8")
    simulated = remediator(
        "simulate",
        str(alert_path),
        "--rules",
        str(tmp_path / "again/deploy/overlays/shop/rules.yaml"),
        cwd=tmp_path,
    )
    assert simulated.returncode == 1
    for line in (simulated.stdout + simulated.stderr).splitlines():
        assert line in text, line


# ---- the Slack app manifest -----------------------------------------------------------------------
# The scope each Slack Web API method the code calls needs (api.slack.com/methods).
SCOPES = {
    "chat_postMessage": "chat:write",
    "chat_update": "chat:write",
    "chat_postEphemeral": "chat:write",
    "usergroups_users_list": "usergroups:read",
}


def test_the_slack_manifest_asks_for_what_the_code_calls() -> None:
    page = (DOCS / "how-to" / "approvals.md").read_text(encoding="utf-8")
    marked = re.search(r"<!-- slack-manifest:[^\n]*-->\n```yaml\n(.*?)\n```", page, re.S)
    assert marked, "docs/how-to/approvals.md lost its Slack app manifest"
    manifest = yaml.safe_load(marked[1])
    called = set()
    for source in (ROOT / "remediator" / "notify" / "slack").glob("*.py"):
        called |= set(re.findall(r"\._web\.(\w+)\(", source.read_text(encoding="utf-8")))
    assert called, "found no Slack Web API call"
    assert called <= set(SCOPES), f"a Slack method without a known scope: {called - set(SCOPES)}"
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == sorted({SCOPES[m] for m in called})
    interactivity = manifest["settings"]["interactivity"]
    assert interactivity["is_enabled"] is True
    assert interactivity["request_url"].endswith("/slack/interactions")
    routes = (ROOT / "remediator" / "api" / "slack_interactions.py").read_text(encoding="utf-8")
    assert 'add_post("/slack/interactions"' in routes
