"""``kubernetes.logs`` and ``kubernetes.events``: what the cluster says about the target.

Both only read (``get pods/log``, ``list events``: deploy/base/role.yaml), through the app's
client (``handlers/kube.py``). Names are validated as Kubernetes names before they go into a
request path or a field selector (labels are untrusted).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from handlers.kube import ApiRequest, Label, Subdomain, api_client, client, send
from remediator import Context, GatherParams, gatherer

MAX_LINES = 500
MAX_EVENTS = 20  # the most recent ones shown
_KIND = re.compile(r"^[A-Z][A-Za-z0-9]{0,62}$")


def _kind(value: str) -> str:
    if not _KIND.match(value):
        raise ValueError(f"{value!r} is not a Kubernetes kind (e.g. Deployment, Pod, StatefulSet)")
    return value


Kind = Annotated[str, AfterValidator(_kind)]


class LogsParams(GatherParams):
    namespace: Label
    pod: Subdomain
    container: Label | None = None
    lines: int = Field(default=50, ge=1, le=MAX_LINES)


class EventsParams(GatherParams):
    namespace: Label
    kind: Kind
    name: Subdomain


async def _connect(ctx: Context) -> None:
    """The app's client, made once (the library imported, the config read)."""
    await api_client(ctx)


def _logs_title(params: LogsParams) -> str:
    container = f" (container {params.container})" if params.container else ""
    return f"last {params.lines} log lines of pod {params.namespace}/{params.pod}{container}"


@gatherer("kubernetes.logs", params=LogsParams, describe=_logs_title, keep="tail", prepare=_connect)
async def pod_logs(params: LogsParams, ctx: Context) -> str:
    """The pod's last ``lines`` log lines (of ``container``, else its only one)."""
    core = client.CoreV1Api(await api_client(ctx))
    query: tuple[tuple[str, str], ...] = (("tailLines", str(params.lines)),)
    if params.container:
        query = (("container", params.container), *query)
    request = ApiRequest(
        verb="get",
        group="",
        version="v1",
        plural="pods",
        kind="Pod",
        namespace=params.namespace,
        name=params.pod,
        subresource="log",
        query=query,
    )
    extra: dict[str, Any] = {"container": params.container} if params.container else {}
    text = await send(
        ctx,
        request,
        lambda timeout: core.read_namespaced_pod_log(
            params.pod, params.namespace, tail_lines=params.lines, _request_timeout=timeout, **extra
        ),
        record=False,
    )
    return str(text) or "(the log is empty)"


def _events_title(params: EventsParams) -> str:
    return f"recent Events of {params.kind} {params.namespace}/{params.name}"


@gatherer("kubernetes.events", params=EventsParams, describe=_events_title, prepare=_connect)
async def object_events(params: EventsParams, ctx: Context) -> str:
    """The object's Events, newest first: ``time type reason (xN): message``."""
    core = client.CoreV1Api(await api_client(ctx))
    selector = f"involvedObject.kind={params.kind},involvedObject.name={params.name}"
    request = ApiRequest(
        verb="list",
        group="",
        version="v1",
        plural="events",
        kind="Event",
        namespace=params.namespace,
        field_selector=selector,
    )
    found = await send(
        ctx,
        request,
        lambda timeout: core.list_namespaced_event(
            params.namespace, field_selector=selector, _request_timeout=timeout
        ),
        record=False,
    )
    events = sorted(found.items or [], key=_when, reverse=True)
    if not events:
        what = f"{params.kind} {params.namespace}/{params.name}"
        return f"(no Events of {what}: Kubernetes keeps them about an hour)"
    lines = [_line(event) for event in events[:MAX_EVENTS]]
    if len(events) > MAX_EVENTS:
        lines.append(f"({len(events) - MAX_EVENTS} older Events not shown)")
    return "\n".join(lines)


def _when(event: Any) -> str:
    at = (
        event.last_timestamp or event.event_time or event.first_timestamp or event.metadata.creation_timestamp
    )
    return at.isoformat() if hasattr(at, "isoformat") else str(at or "")


def _line(event: Any) -> str:
    count = f" (x{event.count})" if event.count and event.count > 1 else ""
    when = _when(event) or "?"
    return f"{when} {event.type or '?'} {event.reason or '?'}{count}: {(event.message or '').strip()}"
