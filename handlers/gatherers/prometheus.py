"""``prometheus.query``: an instant query's value, each series a number with its labels.

``GET {url}/api/v1/query?query=...`` through the app's HTTP session. The URL is checked like
a probe's (an absolute http(s) URL; substituted values percent-encoded); the query is sent as
a query parameter, and a label value substituted into it is escaped as a PromQL string
(quotes and backslashes), so a label cannot change the query's shape.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import aiohttp
from pydantic import AfterValidator, Field

from remediator import (
    Context,
    GatherParams,
    PermanentError,
    TemporaryError,
    checked_url,
    gatherer,
    url_escape,
)

MAX_SERIES = 20
MAX_QUERY = 2000


def promql_escape(value: Any) -> str:
    """Finalizer for PromQL: a substituted value can stand only inside a string literal."""
    text = str(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("'", "\\'").replace("\n", "\\n")


def _url(value: str) -> str:
    return checked_url(value.strip().rstrip("/"))


class QueryParams(GatherParams):
    url: Annotated[str, AfterValidator(_url)]
    query: str = Field(min_length=1, max_length=MAX_QUERY)


def _title(params: QueryParams) -> str:
    return f"Prometheus: {params.query}"


@gatherer(
    "prometheus.query",
    params=QueryParams,
    describe=_title,
    escapes={"url": url_escape, "query": promql_escape},
)
async def instant_query(params: QueryParams, ctx: Context) -> str:
    """One line per series: ``value {label="..."}``; a scalar or a string: its value."""
    endpoint = f"{params.url}/api/v1/query"
    try:
        async with ctx.resources.http.get(
            endpoint,
            params={"query": params.query},
            timeout=aiohttp.ClientTimeout(total=max(0.1, ctx.remaining())),
            allow_redirects=False,
        ) as response:
            body = await _json(response, endpoint)
    except aiohttp.ClientError as exc:
        raise TemporaryError(f"cannot reach Prometheus at {endpoint}: {exc}") from exc
    if body.get("status") != "success":
        said = body.get("error") or body.get("errorType") or "no error given"
        raise PermanentError(f"Prometheus refused the query: {said}")
    return _shown(body.get("data") or {})


async def _json(response: aiohttp.ClientResponse, endpoint: str) -> dict[str, Any]:
    try:
        body = await response.json(content_type=None)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise PermanentError(f"{endpoint} answered HTTP {response.status} without Prometheus' JSON")
    if response.status >= 500:
        raise TemporaryError(f"{endpoint} answered HTTP {response.status}: {body.get('error', '')}")
    return body


def _shown(data: dict[str, Any]) -> str:
    kind, result = data.get("resultType"), data.get("result")
    if kind in ("scalar", "string") and isinstance(result, list) and len(result) == 2:
        return _number(result[1])
    if not isinstance(result, list) or not result:
        return "(no series: the query matched nothing)"
    lines = []
    for series in result[:MAX_SERIES]:
        labels = series.get("metric") or {}
        shown = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        value = series.get("value") or (series.get("values") or [[0, "?"]])[-1]
        lines.append(f"{_number(value[1])} {{{shown}}}")
    if len(result) > MAX_SERIES:
        lines.append(f"({len(result) - MAX_SERIES} more series not shown)")
    return "\n".join(lines)


def _number(value: Any) -> str:
    """Prometheus sends values as strings: ``"3"``, ``"0.25"``, ``"NaN"``, ``"+Inf"``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isfinite(number) and number == int(number) and abs(number) < 1e15:
        return str(int(number))
    return f"{number:.6g}"
