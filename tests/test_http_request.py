"""``http.request`` against a real local HTTP server."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

import handlers  # noqa: F401  (registers http.request)
from remediator.registry import default_registry
from tests.conftest import MakeHarness
from tests.support.payloads import alert, payload
from tests.support.procs import free_port


@pytest.fixture
async def target() -> AsyncIterator[tuple[TestServer, list[dict[str, Any]]]]:
    calls: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        calls.append({"method": request.method, "path": request.raw_path,
                      "auth": request.headers.get("X-Key"), "body": body})
        status = int(request.query.get("status", "200"))
        return web.Response(status=status, text="x" * 2000 if status >= 500 else "ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    server = TestServer(app)
    await server.start_server()
    yield server, calls
    await server.close()


def rules(base: str) -> str:
    return f"""
rules:
  - name: hook
    matchers: ['alertname="Hook"']
    handler: http.request
    target: 'hook/x'
    params:
      url: '{base}/restart/{{{{ labels.service }}}}?status={{{{ labels.code | default(200) }}}}'
      headers: {{X-Key: abc}}
      json: {{service: '{{{{ labels.service }}}}', why: '{{{{ annotations.summary }}}}'}}
"""


async def test_calls_the_url_with_escaped_labels(harness: MakeHarness, target: Any) -> None:
    server, calls = target
    base = f"http://127.0.0.1:{server.port}"

    h = await harness(rules(base), registry=default_registry)
    response = await h.post(payload(alert("Hook", service="a/../b c")))
    event = await h.event((await response.json())["event_ids"][0])
    assert event.outcome_label == "succeeded", event.message
    assert calls[0]["path"] == "/restart/a%2F..%2Fb%20c?status=200"  # labels cannot change the path
    assert calls[0]["method"] == "POST" and calls[0]["auth"] == "abc"
    assert calls[0]["body"] == {"service": "a/../b c", "why": "Hook is firing"}


async def test_unexpected_status_fails_with_truncated_body(harness: MakeHarness, target: Any) -> None:
    server, _ = target

    h = await harness(rules(f"http://127.0.0.1:{server.port}"), registry=default_registry)
    response = await h.post(payload(alert("Hook", service="x", code="503")))
    event = await h.event((await response.json())["event_ids"][0])
    assert event.outcome_label == "failed" and "answered HTTP 503" in event.message
    assert event.message.endswith("... (truncated)") and len(event.message) < 700


async def test_unreachable_url_is_a_failure(harness: MakeHarness) -> None:
    h = await harness(rules(f"http://127.0.0.1:{free_port()}"), registry=default_registry)
    response = await h.post(payload(alert("Hook", service="x")))
    event = await h.event((await response.json())["event_ids"][0])
    assert event.outcome_label == "failed" and "failed" in event.message
