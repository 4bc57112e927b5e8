"""``http.request`` against a real local HTTP server."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

import handlers  # noqa: F401  (registers http.request)
from remediator.errors import RulesError, TemplateError
from remediator.handling.registry import default_registry
from remediator.models import Alert
from remediator.rules.ruleset import parse_rules, render
from tests.conftest import MakeHarness
from tests.support.payloads import alert, payload
from tests.support.procs import free_port


@pytest.fixture
async def target() -> AsyncIterator[tuple[TestServer, list[dict[str, Any]]]]:
    calls: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        calls.append(
            {
                "method": request.method,
                "path": request.raw_path,
                "auth": request.headers.get("X-Key"),
                "body": body,
            }
        )
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


def item_rules(url: str, headers: str = "{}") -> str:
    return f"""
rules:
  - name: hook
    matchers: ['alertname="Hook"']
    handler: http.request
    target: 'hook/x'
    params:
      url: '{url}'
      headers: {headers}
"""


@pytest.mark.parametrize("item", ["..", ".", "%2e%2e"])
async def test_a_dot_segment_label_calls_nothing(harness: MakeHarness, target: Any, item: str) -> None:
    server, calls = target
    base = f"http://127.0.0.1:{server.port}"
    h = await harness(item_rules(base + "/api/items/{{ labels.item }}/restart"), registry=default_registry)
    response = await h.post(payload(alert("Hook", item=item)))
    event = await h.event((await response.json())["event_ids"][0])
    if item == "%2e%2e":  # percent-encoded again: an item literally named %2e%2e
        assert event.outcome_label == "succeeded", event.message
        assert calls[0]["path"] == "/api/items/%252e%252e/restart"
        return
    assert event.outcome_label == "failed"
    assert f"has a {item!r} segment" in event.message and "cannot render" in event.message
    assert calls == []  # before: POST /api/restart (the client collapsed the dot segment)


async def test_the_path_is_sent_exactly_as_rendered(harness: MakeHarness, target: Any) -> None:
    server, calls = target
    base = f"http://127.0.0.1:{server.port}"
    h = await harness(
        item_rules(base + "/api/%7Eitems/{{ labels.item }}/b%41?q=%7E"), registry=default_registry
    )
    response = await h.post(payload(alert("Hook", item="a~b")))
    event = await h.event((await response.json())["event_ids"][0])
    assert event.outcome_label == "succeeded", event.message
    assert calls[0]["path"] == "/api/%7Eitems/a~b/b%41?q=%7E"  # not re-quoted to /api/~items


def test_a_literal_dot_segment_or_raw_space_fails_check() -> None:
    for url, reason in [
        ("http://svc/a/../b", "has a '..' segment"),
        ("http://svc/a b", "' ' at position 12"),
        ("http://svc/a%zz", "'%' at position 12"),
    ]:
        with pytest.raises(RulesError) as info:
            parse_rules(item_rules(url).encode(), "rules.yaml", default_registry)
        assert reason in info.value.problems[0], info.value.problems


@pytest.mark.parametrize("value", ["a\x00b", "a\x0bb", "a\x7fb", "a\tb", "a\rb"])
def test_control_characters_in_headers_are_refused_at_render(value: str) -> None:
    rules = parse_rules(
        item_rules("http://svc/x", "{X-Item: '{{ labels.item }}'}").encode(), "rules.yaml", default_registry
    )
    with pytest.raises(TemplateError, match="control character"):
        render(rules.rules[0], Alert.model_validate(alert("Hook", item=value)))
    plan = render(rules.rules[0], Alert.model_validate(alert("Hook", item="a b")))
    assert plan.params.model_dump()["headers"] == {"X-Item": "a b"}


def test_header_names_must_be_tokens() -> None:
    with pytest.raises(RulesError, match="header name 'X Item' is not a valid name"):
        parse_rules(item_rules("http://svc/x", "{'X Item': v}").encode(), "rules.yaml", default_registry)
