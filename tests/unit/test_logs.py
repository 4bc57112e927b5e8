"""Logging: one format for every line (ours and the libraries'), long values cut."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from remediator import logs
from tests.conftest import TOKEN, MakeHarness
from tests.support.payloads import alert, payload

RULES = """
rules:
  - name: probe
    matchers: ['alertname="Probe"']
    handler: test.probe
    target: 'svc/{{ labels.service }}'
    params: {bucket: '{{ labels.bucket }}'}
"""
HUGE = 900 * 1024


@pytest.fixture
def json_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    """capsys, and the logging configuration restored afterwards. The test itself calls
    ``logs.configure``: the handler binds sys.stderr, which pytest swaps per phase."""
    root = logging.getLogger()
    level = root.level
    yield capsys
    structlog.reset_defaults()
    for handler in [h for h in root.handlers if h.get_name() == "remediator"]:
        root.removeHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(False)


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line parsed as JSON: fails on a plain-text line."""
    return [json.loads(line) for line in text.splitlines() if line]


def test_a_library_warning_is_one_json_line(json_logs: pytest.CaptureFixture[str]) -> None:
    logs.configure("json", "INFO")
    logging.getLogger("kubernetes_asyncio.config").warning("no config found in %s", "~/.kube")
    structlog.get_logger().warning("our.event", n=1)
    lines = json_lines(json_logs.readouterr().err)
    assert len(lines) == 2
    assert lines[0]["event"] == "no config found in ~/.kube"
    assert lines[0]["level"] == "warning" and lines[0]["logger"] == "kubernetes_asyncio.config"
    assert "timestamp" in lines[0]
    assert lines[1]["event"] == "our.event" and lines[1]["level"] == "warning"


def test_what_a_library_says_before_it_raises_is_quieted(json_logs: pytest.CaptureFixture[str]) -> None:
    """Issue 25 (item 12): kubernetes_asyncio's "Config not found" warning is not logged;
    the handler's one error says what is missing."""
    logs.configure("json", "INFO")
    logging.getLogger("kubernetes_asyncio.config.kube_config").warning("Config not found: %s", "/x")
    logging.getLogger("kubernetes_asyncio.config.kube_config").error("a real error")
    lines = json_lines(json_logs.readouterr().err)
    assert [line["event"] for line in lines] == ["a real error"]
    logging.getLogger("kubernetes_asyncio.config.kube_config").setLevel(logging.NOTSET)


def test_a_library_traceback_stays_inside_the_json_line(json_logs: pytest.CaptureFixture[str]) -> None:
    logs.configure("json", "INFO")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("asyncio").exception("Task exception was never retrieved")
    [line] = json_lines(json_logs.readouterr().err)
    assert line["level"] == "error" and "RuntimeError: boom" in line["exception"]


def test_long_values_are_cut_with_their_length(json_logs: pytest.CaptureFixture[str]) -> None:
    logs.configure("json", "INFO")
    big = "x" * 5000
    structlog.get_logger().info("ev", labels={"big": big}, items=[big], text=big, n=3)
    logging.getLogger("aiohttp.server").warning("bad request: %s", big)
    mine, theirs = json_lines(json_logs.readouterr().err)
    cut = "x" * logs.MAX_VALUE_CHARS + "... (5000 chars)"
    assert mine["labels"] == {"big": cut} and mine["items"] == [cut] and mine["text"] == cut
    assert mine["n"] == 3
    assert theirs["event"] == "bad request: " + "x" * (logs.MAX_VALUE_CHARS - 13) + "... (5013 chars)"


async def test_a_900kb_label_is_cut_in_every_log_line(
    harness: MakeHarness, json_logs: pytest.CaptureFixture[str]
) -> None:
    logs.configure("json", "INFO")
    """Through the real app: the label reaches the params and the plan the dry run logs."""
    logs.configure("json", "INFO")
    h = await harness(RULES, max_body_bytes=2 * 1024 * 1024, dry_run=True)
    huge = "b" * HUGE
    body = payload(alert("Probe", service="a", bucket=huge, annotations={"summary": huge}))
    response = await h.client.post(  # a file-like body: aiohttp warns about large bytes
        "/webhooks/alertmanager",
        data=io.BytesIO(json.dumps(body).encode()),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    assert response.status == 202, await response.text()
    [event_id] = (await response.json())["event_ids"]
    await h.event(event_id)
    logging.getLogger("aiohttp.access").warning("echo %s", huge)
    lines = json_logs.readouterr().err.splitlines()
    assert max(len(line) for line in lines) < 4096
    parsed = json_lines("\n".join(lines))
    cut = {
        line["event"]: [int(n) for n in re.findall(r"\.\.\. \((\d+) chars\)", json.dumps(line))]
        for line in parsed
    }
    # the dry run's plan (a list) carries the label; a stdlib line is cut by the same processor
    assert cut["remediation.dry_run"] == [HUGE + len("probe ")]
    assert [n for event, n in cut.items() if event.startswith("echo ")] == [[HUGE + 5]]
