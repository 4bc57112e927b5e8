"""``http.request``: call a URL, for runbooks that live elsewhere."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
from pydantic import Field, field_validator
from yarl import URL

from remediator import (
    Checked,
    Context,
    Handler,
    HandlerParams,
    Result,
    RuleDuration,
    TemporaryError,
    checked_url,
    handler,
    url_escape,
)

_MAX_BODY_SHOWN = 500
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # a header name (RFC 9110)


class HttpRequestParams(HandlerParams):
    url: str
    """absolute http(s) URL; every `{{ }}` substitution is percent-encoded, so a label can't change the
    host or path structure. The URL is sent exactly as rendered (not re-quoted, dot segments not
    resolved), so it must be valid as written: a space or other character outside RFC 3986 must be
    written percent-encoded. A path segment that is `.` or `..` (also `%2e%2e`) is refused, so a label
    `item=".."` cannot turn `/api/items/{{ labels.item }}/restart` into `/api/restart`
    """
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    """GET, POST, PUT, PATCH, DELETE"""
    headers: dict[str, str] = Field(default_factory=dict)
    """values templated; names must be HTTP tokens; a value with any control character (`\\x00`-`\\x1f`,
    `\\x7f`-`\\x9f`, tab and line breaks included) is refused
    """
    json_body: Any = Field(default=None, alias="json")
    """templated JSON body (unset: no body)"""
    expect_status: list[int] = Field(default_factory=list)
    """list of accepted codes"""
    timeout: RuleDuration = Field(default=10.0, gt=0, le=600)
    """duration, at most `10m`; also bounded by the rule's `timeout`"""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return checked_url(value)

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for key, item in value.items():
            if not _TOKEN.match(key):
                raise ValueError(
                    f"header name {key!r} is not a valid name (letters, digits and !#$%&'*+.^_`|~- only)"
                )
            if bad := next((ch for ch in item if unicodedata.category(ch) == "Cc"), None):
                raise ValueError(
                    f"header {key!r}: the value has the control character "
                    f"{bad!r}; control characters are not allowed in headers"
                )
        return value

    def expected(self, status: int) -> bool:
        return status in self.expect_status if self.expect_status else 200 <= status < 300


def _describe(params: HttpRequestParams) -> list[str]:
    body = " with a JSON body" if params.json_body is not None else ""
    expect = ", ".join(map(str, params.expect_status)) or "2xx"
    return [f"{params.method} {params.url}{body}; expect {expect}"]


@dataclass(frozen=True)
class Answered:
    """What the call got back."""

    status: int
    text: str


@handler(
    "http.request",
    params=HttpRequestParams,
    escapes={"url": url_escape},
    describe=_describe,
)
class HttpRequest(Handler[HttpRequestParams, None, Answered]):
    """Call a URL and check the answer's status code."""

    async def precheck(self, params: HttpRequestParams, ctx: Context) -> Checked[None]:
        return Checked(f"not read first: {params.method} {params.url} is judged by its answer", None)

    async def act(self, params: HttpRequestParams, ctx: Context, seen: None) -> Answered | Result:
        plan = _describe(params)
        if ctx.dry_run:
            return Result.dry_run(plan)
        ctx.step("act", plan[0])
        timeout = aiohttp.ClientTimeout(total=min(params.timeout, max(ctx.remaining(), 0.1)))
        try:
            async with ctx.resources.http.request(
                # encoded=True: the path goes out as rendered, not re-quoted or normalised
                params.method,
                URL(params.url, encoded=True),
                headers=params.headers,
                json=params.json_body,
                timeout=timeout,
            ) as response:
                return Answered(response.status, await response.text(errors="replace"))
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise TemporaryError(f"{params.method} {params.url} failed: {exc or type(exc).__name__}") from exc

    async def verify(self, params: HttpRequestParams, ctx: Context, acted: Answered) -> Result:
        status, text = acted.status, acted.text
        shown = text[:_MAX_BODY_SHOWN] + ("... (truncated)" if len(text) > _MAX_BODY_SHOWN else "")
        ctx.step("verify", f"HTTP {status}", status=status)
        if not params.expected(status):
            return Result.failed(
                f"{params.method} {params.url} answered HTTP {status}: {shown}",
                retryable=status >= 500,
                status=status,
            )
        return Result.succeeded(
            f"{params.method} {params.url} answered HTTP {status}", status=status, body=shown
        )
