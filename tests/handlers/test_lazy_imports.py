"""Issue 17: a replica imports kubernetes_asyncio and asynch only when a rule needs them,
and slack_sdk only when Slack is configured or a button is clicked.

Each case starts the app in a fresh interpreter (as ``remediator serve`` does: plugins,
then the app, serving on a real port) and reads ``sys.modules``. The heavy clients are
imported at their first use in a handler call (``handlers/lazy.py``), not at load.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("kubernetes_asyncio", "asynch", "slack_sdk")  # slack_sdk: at Slack's first use

SCRIPT = """
import asyncio, json, sys
from aiohttp import web
from remediator.app import create_app
from remediator.handling.registry import load_plugins
from remediator.settings import Settings

async def main() -> None:
    settings = Settings(rules=sys.argv[1], webhook_token="t" * 32, workers=1)
    load_plugins(settings.handler_modules)
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    seen = {"started": [m for m in HEAVY_NAMES if m in sys.modules]}
    if sys.argv[2] == "use":  # what a Kubernetes handler's first call does
        from handlers.kube import client
        client.ApiClient
        seen["used"] = [m for m in HEAVY_NAMES if m in sys.modules]
    await runner.cleanup()
    print(json.dumps(seen))

asyncio.run(main())
""".replace("HEAVY_NAMES", repr(HEAVY))

HTTP_ONLY = """
rules:
  - name: hook
    matchers: ['alertname="Hook"']
    handler: http.request
    target: 'hook/x'
    params: {url: 'http://127.0.0.1:9/restart'}
"""

FLINK = """
rules:
  - name: flink
    matchers: ['alertname="FlinkDeploymentFailed"']
    handler: flink.restart
    target: 'flink/{{ labels.namespace }}/{{ labels.name }}'
    params: {namespace: '{{ labels.namespace }}', name: '{{ labels.name }}'}
"""


def start(tmp_path: Path, rules: str, use: bool = False) -> dict[str, list[str]]:
    path = tmp_path / "rules.yaml"
    path.write_text(rules)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(path), "use" if use else "start"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen: dict[str, list[str]] = json.loads(done.stdout.strip().splitlines()[-1])
    return seen


def test_an_http_only_replica_never_imports_the_heavy_clients(tmp_path: Path) -> None:
    assert start(tmp_path, HTTP_ONLY) == {"started": []}


def test_a_kubernetes_rule_imports_its_client_at_the_first_use(tmp_path: Path) -> None:
    seen = start(tmp_path, FLINK, use=True)
    assert seen["started"] == []  # loading the rule imports nothing heavy
    assert "kubernetes_asyncio" in seen["used"] and "asynch" not in seen["used"]
    assert "slack_sdk" not in seen["used"]
