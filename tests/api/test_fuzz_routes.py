"""Property-based fuzzing of every route: hostile headers, cookies, query strings, bodies and
form fields never get a 5xx; the API always answers JSON errors, the console always pages
with its security headers.

Requests go over raw sockets to the real app (served from a thread), so bytes that client
libraries refuse (non-ASCII header values, undecodable cookies) arrive as an attacker
would send them. Bounded by ``REMEDIATOR_FUZZ_EXAMPLES`` per route (CI keeps the default).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
import uvloop
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from remediator.api import serving
from remediator.app import create_app
from remediator.notify.slack.signing import signature
from remediator.settings import Settings
from tests.support.admin import ADMIN_TOKEN, WEBHOOK_TOKEN, Calls, make_registry, make_settings, write_rules
from tests.support.procs import free_port
from tests.support.raw_http import Answer, request_bytes, send

EXAMPLES = int(os.environ.get("REMEDIATOR_FUZZ_EXAMPLES", "12")) * 2
SIGNING_SECRET = "slack-signing-secret-for-fuzzing"
READER = "reader-token-for-fuzzing-0123"
SECURITY_HEADERS = ("content-security-policy", "x-frame-options", "x-content-type-options")
NOT_JSON = {"/metrics"}  # Prometheus' text format
ID = re.compile(r"\{[a-z_]+\}")


def route_list() -> list[tuple[str, str]]:
    config = make_settings(Path("rules.yaml"), ui=True, slack_signing_secret=SIGNING_SECRET)
    app = create_app(config, registry=make_registry(Calls()))
    return sorted(
        {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource and r.method != "HEAD"}
    )


ROUTES = route_list()


@dataclass
class Live:
    host: str
    port: int
    session: str  # the console cookie of a signed-in admin
    csrf: str  # its form token

    def ask(self, data: bytes) -> Answer:
        return asyncio.run(send(self.host, self.port, data))


def _sign_in(host: str, port: int) -> tuple[str, str]:
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request("GET", "/ui/signin")
    page = conn.getresponse()
    nonce = page.getheader("Set-Cookie", "").split(";")[0]
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.read().decode())
    assert csrf is not None
    form = urlencode({"token": ADMIN_TOKEN, "csrf": csrf.group(1)})
    headers = {"Cookie": nonce, "Content-Type": "application/x-www-form-urlencoded"}
    conn.request("POST", "/ui/signin", body=form, headers=headers)
    done = conn.getresponse()
    done.read()
    session = next(c for c in done.headers.get_all("Set-Cookie") or [] if c.startswith("remediator_ui="))
    cookie = session.split(";")[0]
    conn.request("GET", "/ui/", headers={"Cookie": cookie})
    found = re.search(r'name="csrf" value="([^"]+)"', conn.getresponse().read().decode())
    assert found is not None
    conn.close()
    return cookie, found.group(1)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    folder = tmp_path_factory.mktemp("fuzz")
    tokens = folder / "tokens.yaml"
    tokens.write_text(f'admin: "{ADMIN_TOKEN}"\nreader:\n  token: "{READER}"\n  access: read\n')
    config = make_settings(
        write_rules(folder / "rules.yaml"),
        admin_token=None,
        admin_tokens_file=tokens,
        ui=True,
        slack_signing_secret=SIGNING_SECRET,
        log_level="CRITICAL",
        host="127.0.0.1",
        port=free_port(),
        body_timeout=5.0,
    )
    with served(config) as (host, port):
        cookie, csrf = _sign_in(host, port)
        yield Live(host, port, cookie, csrf)


@contextmanager
def served(config: Settings) -> Iterator[tuple[str, int]]:
    """The app as ``serve`` runs it (its protocol, its JSON errors, uvloop), in a thread."""
    ready, stop, failure = threading.Event(), threading.Event(), list[BaseException]()

    async def main() -> None:
        app = create_app(config, registry=make_registry(Calls()))
        async with serving.serving(app, config):
            ready.set()
            await asyncio.to_thread(stop.wait)

    def thread_main() -> None:
        try:
            uvloop.run(main())
        except BaseException as exc:  # reported to the test
            failure.append(exc)
            ready.set()

    thread = threading.Thread(target=thread_main, name="remediator-fuzz-server", daemon=True)
    thread.start()
    try:
        ready.wait(30)
        if failure:
            raise failure[0]
        yield config.host, config.port
    finally:
        stop.set()
        thread.join(30)


# ---- what a hostile client sends ------------------------------------------------------------
# Header bytes: mostly printable text of any script (UTF-8, undecodable as latin-1 or ASCII),
# sometimes raw bytes (not UTF-8 at all; the parser's 400 for a control byte is an answer too
# and is checked like any other); never the CR, LF and NUL that end a header.
_printable = st.characters(min_codepoint=0x20, blacklist_characters="\x7f")
header_bytes = (
    st.text(_printable, max_size=60).map(lambda t: t.encode("utf-8", "surrogatepass"))
    | st.text(_printable, max_size=60).map(str.encode)
    | st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"").replace(b"\0", b""))
)
texts = st.text(max_size=40)  # any code point, lone surrogates included
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)
slack_payloads = st.fixed_dictionaries(
    {"type": st.sampled_from(["block_actions", "view_submission"]) | texts},
    optional={
        key: json_values
        | st.fixed_dictionaries({"id": json_values, "thread_ts": json_values, "username": json_values})
        for key in ("user", "channel", "container", "message")
    }
    | {
        "actions": json_values
        | st.lists(
            st.fixed_dictionaries(
                {
                    "action_id": st.sampled_from(["remediator_approve", "remediator_reject"]) | json_values,
                    "value": st.just("0" * 32) | json_values,
                }
            ),
            max_size=3,
        )
    },
)


def _quoted(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


@st.composite
def requests(draw: st.DrawFn, live: Live, method: str, path: str) -> bytes:
    path = ID.sub(lambda _: _quoted(draw(st.text(max_size=40) | st.just("0" * 32))), path)
    query = draw(st.lists(st.tuples(texts, texts), max_size=4))
    if query:
        path += "?" + "&".join(f"{_quoted(k)}={_quoted(v)}" for k, v in query)
    headers: list[tuple[bytes, bytes]] = []
    auth = draw(
        st.sampled_from(["", f"Bearer {WEBHOOK_TOKEN}", f"Bearer {ADMIN_TOKEN}", f"Bearer {READER}"]).map(
            str.encode
        )
        | header_bytes.map(lambda b: b"Bearer " + b)
        | header_bytes.map(lambda b: b"Basic " + b)
    )
    if auth:
        headers.append((b"Authorization", auth))
    cookie = draw(
        st.sampled_from([b"", live.session.encode(), live.session.encode() + b"x"])
        | header_bytes.map(lambda b: b"remediator_ui=" + b)
        | header_bytes.map(lambda b: b"remediator_ui_signin=" + b)
    )
    if cookie:
        headers.append((b"Cookie", cookie))
    for name in draw(
        st.lists(
            st.sampled_from(
                [
                    b"Accept",
                    b"Content-Encoding",
                    b"X-Forwarded-For",
                    b"If-None-Match",
                    b"X-Request-Id",
                    b"Origin",
                ]
            ),
            max_size=3,
        )
    ):
        headers.append((name, draw(header_bytes)))
    if path.startswith("/slack/") and draw(st.integers(0, 3)):  # mostly signed: the payload is read
        payload = json.dumps(draw(slack_payloads)).encode("utf-8", "surrogatepass")
        body, kind = b"payload=" + quote(payload, safe="").encode(), b"application/x-www-form-urlencoded"
        stamp = str(int(time.time()))
        headers.append((b"X-Slack-Request-Timestamp", stamp.encode()))
        headers.append((b"X-Slack-Signature", signature(SIGNING_SECRET, stamp, body).encode()))
    else:
        body, kind = draw(_bodies(live, path))
        if path.startswith("/slack/"):  # hostile signing headers
            stamp_bytes = draw(st.sampled_from([str(int(time.time())).encode(), b"9" * 400]) | header_bytes)
            headers.append((b"X-Slack-Request-Timestamp", stamp_bytes))
            headers.append((b"X-Slack-Signature", draw(header_bytes)))
    if kind:
        headers.append((b"Content-Type", kind))
    return request_bytes(method, path.encode(), headers, body)


@st.composite
def _bodies(draw: st.DrawFn, live: Live, path: str) -> tuple[bytes, bytes]:
    form_fields = st.lists(
        st.tuples(
            st.sampled_from(["csrf", "token", "reason", "for", "matchers", "note", "payload"]) | texts, texts
        ),
        max_size=5,
    )
    choice = draw(st.sampled_from(["none", "form", "json", "bytes", "slack"]))
    if choice == "form":
        fields = draw(form_fields)
        if draw(st.booleans()):
            fields.append(("csrf", live.csrf))
        body = "&".join(f"{_quoted(k)}={_quoted(v)}" for k, v in fields).encode()
        return body, b"application/x-www-form-urlencoded"
    if choice == "json":
        text = json.dumps(draw(json_values))
        return text.encode("utf-8", "surrogatepass"), b"application/json"
    if choice == "bytes":
        return draw(st.binary(max_size=200)), draw(header_bytes)
    if choice == "slack":
        payload = json.dumps(draw(slack_payloads)).encode("utf-8", "surrogatepass")
        return b"payload=" + quote(payload, safe="").encode(), b"application/x-www-form-urlencoded"
    return b"", b""


# ---- the property ---------------------------------------------------------------------------
def check(answer: Answer, path: str) -> None:
    assert answer.status < 500, (answer.status, answer.body[:500])
    if path.startswith("/ui/"):
        for name in SECURITY_HEADERS:
            assert name in answer.headers, (name, answer.status, answer.headers)
        if answer.status >= 400 and answer.content_type != "text/html":
            # only the protocol's own refusal of a request it cannot parse comes before the console
            assert (answer.status, answer.content_type) == (400, "application/json"), answer
        return
    if answer.status >= 400 or (answer.status < 300 and path not in NOT_JSON and answer.body):
        assert answer.content_type == "application/json", (answer.status, answer.headers, answer.body[:200])
        assert "error" in json.loads(answer.body) or answer.status < 400


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_no_route_answers_a_5xx_or_an_unsafe_page(live: Live, method: str, path: str) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=requests(live, method, path))
    def fuzz(data: bytes) -> None:
        check(live.ask(data), path)

    fuzz()
