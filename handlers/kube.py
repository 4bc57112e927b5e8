"""Kubernetes plumbing shared by the Kubernetes handlers.

The app owns the API client (``ctx.resources``, closed at shutdown); handlers
describe each request as an :class:`ApiRequest` (so the plan, the timeline and
the error messages show the exact call), send it with a timeout, and get API
errors back as clear :class:`PermanentError`/:class:`TemporaryError`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar
from urllib.parse import urlencode

import aiohttp
from pydantic import AfterValidator

from handlers.lazy import LazyModule
from remediator import Conflict, Context, PermanentError, TemporaryError
from remediator import dns1123_label as dns1123_label  # re-exported: handlers name them from here
from remediator import dns1123_subdomain as dns1123_subdomain

if TYPE_CHECKING:
    from kubernetes_asyncio import client as client
    from kubernetes_asyncio import config as config
    from kubernetes_asyncio.client import exceptions as exceptions
    from kubernetes_asyncio.config import config_exception
else:  # imported at the first call of a Kubernetes handler (handlers/lazy.py)
    client = LazyModule("kubernetes_asyncio.client")
    config = LazyModule("kubernetes_asyncio.config")
    exceptions = LazyModule("kubernetes_asyncio.client.exceptions")
    config_exception = LazyModule("kubernetes_asyncio.config.config_exception")

T = TypeVar("T")

RESOURCE_KEY = "kubernetes"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
REQUEST_TIMEOUT = 10.0  # seconds per API call, further bounded by the handler's deadline
ROLE_FILE = "deploy/base/role.yaml"
NODE_RBAC = "deploy/components/node-rbac"  # the opt-in ClusterRole of kubernetes.cordon

Label = Annotated[str, AfterValidator(dns1123_label)]
Subdomain = Annotated[str, AfterValidator(dns1123_subdomain)]


# ---- the app-owned client ---------------------------------------------------------------


async def api_client(ctx: Context) -> client.ApiClient:
    """The app's ApiClient: made on first use (in-cluster, else kubeconfig), closed at shutdown."""
    return await ctx.resources.get(RESOURCE_KEY, _connect, _disconnect)


async def _connect() -> client.ApiClient:
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except config_exception.ConfigException:
        path = _kubeconfig_path()
        if not _is_file(path):
            raise PermanentError(
                "no Kubernetes API configuration: not running in a cluster (KUBERNETES_SERVICE_HOST "
                f"is unset) and there is no kubeconfig file at {path!r} (KUBECONFIG)"
            ) from None
        try:
            await config.load_kube_config(
                config_file=path, client_configuration=configuration, persist_config=False
            )
        except (config_exception.ConfigException, OSError, ValueError) as exc:
            raise PermanentError(
                "no Kubernetes API configuration: not running in a cluster, and the kubeconfig "
                f"{path!r} (KUBECONFIG) is unusable: {exc}"
            ) from exc
    return client.ApiClient(configuration=configuration)


def _is_file(path: str) -> bool:
    return os.path.isfile(path)


def _kubeconfig_path() -> str:
    return os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")


async def _disconnect(api: client.ApiClient) -> None:
    await api.close()


# ---- requests -----------------------------------------------------------------------------

Verb = Literal["get", "list", "patch", "create", "delete"]
_METHODS = {"get": "GET", "list": "GET", "patch": "PATCH", "create": "POST", "delete": "DELETE"}


@dataclass(frozen=True, kw_only=True)
class ApiRequest:
    """One API request, exactly as sent: for plans, the timeline and error messages."""

    verb: Verb
    group: str  # "" for the core API
    version: str
    plural: str
    kind: str
    namespace: str  # "" for a cluster-scoped resource (nodes), or a list across every namespace
    name: str = ""
    body: dict[str, Any] | list[dict[str, Any]] | None = None
    label_selector: str = ""
    field_selector: str = ""  # e.g. "spec.nodeName=node-1"
    patch_type: str = MERGE_PATCH  # JSON_PATCH when ``body`` is a list of RFC 6902 operations
    subresource: str = ""  # e.g. "log" (pods/log)
    query: tuple[tuple[str, str], ...] = ()  # other query parameters, e.g. (("tailLines", "50"),)

    @property
    def resource(self) -> str:
        """``flinkdeployments.flink.apache.org``, ``deployments.apps``, ``pods``, ``pods/log``."""
        plural = f"{self.plural}/{self.subresource}" if self.subresource else self.plural
        return f"{plural}.{self.group}" if self.group else plural

    @property
    def path(self) -> str:
        api = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        path = (
            f"{api}/namespaces/{self.namespace}/{self.plural}" if self.namespace else f"{api}/{self.plural}"
        )
        if self.name:
            path += f"/{self.name}"
        if self.subresource:
            path += f"/{self.subresource}"
        query = [("labelSelector", self.label_selector)] if self.label_selector else []
        query += [("fieldSelector", self.field_selector)] if self.field_selector else []
        query += list(self.query)
        if query:  # encoded exactly as the client sends it
            path += "?" + urlencode(query)
        return path

    @property
    def target(self) -> str:
        """``FlinkDeployment torghut/torghut-ta``, ``Node node-1`` or ``pods in namespace torghut``."""
        if self.name:
            return (
                f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"
            )
        return (
            f"{self.plural} in namespace {self.namespace}"
            if self.namespace
            else f"{self.plural} in every namespace"
        )

    @property
    def where(self) -> str:
        """``in namespace torghut``, or ``cluster-wide`` (a cluster-scoped or all-namespaces call)."""
        return f"in namespace {self.namespace}" if self.namespace else "cluster-wide"

    def with_body(self, body: dict[str, Any] | list[dict[str, Any]]) -> ApiRequest:
        """This request as a patch (of the object, or of its subresource, e.g. ``scale``): a
        JSON merge patch, or a JSON Patch when ``body`` is a list."""
        return dataclasses.replace(
            self,
            verb="patch",
            body=body,
            patch_type=JSON_PATCH if isinstance(body, list) else MERGE_PATCH,
            label_selector="",
            field_selector="",
            query=(),
        )

    def __str__(self) -> str:
        text = f"{_METHODS[self.verb]} {self.path}"
        if self.body is not None:
            kind = self.patch_type if self.verb == "patch" else "application/json"
            text += f" ({kind}) {json.dumps(self.body, separators=(',', ':'))}"
        return text


def request_timeout(ctx: Context) -> float:
    return max(0.5, min(REQUEST_TIMEOUT, ctx.remaining()))


async def send(
    ctx: Context,
    request: ApiRequest,
    call: Callable[[float], Awaitable[T]],
    *,
    record: bool = True,
) -> T:
    """Run ``call(timeout)`` (the client call for ``request``); map failures to handler errors.

    ``record`` adds the request to the timeline (polls record their first request only).
    """
    timeout = request_timeout(ctx)
    if record:
        ctx.step(f"kube.{request.verb}", str(request))
    try:
        return await call(timeout)
    except exceptions.ApiException as exc:
        raise api_error(request, exc) from exc
    except TimeoutError as exc:
        raise TemporaryError(
            f"{_METHODS[request.verb]} {request.path}: no answer from the Kubernetes API "
            f"within {timeout:.3g}s",
            details={"request": str(request)},
        ) from exc
    except aiohttp.ClientError as exc:
        raise TemporaryError(
            f"{_METHODS[request.verb]} {request.path}: cannot reach the Kubernetes API: {exc}",
            details={"request": str(request)},
        ) from exc


async def send_patch(ctx: Context, request: ApiRequest, method: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Send ``request.body`` as its patch type: ``method(*args, body)`` through :func:`send`.

    A merge patch by default; a JSON Patch when the body is a list of operations.
    Without ``_content_type`` the client sends a dict as JSON Patch (the .pyi stubs omit
    the keyword although the runtime accepts it, hence ``Callable[..., ...]``).
    """
    body = request.body
    return await send(
        ctx,
        request,
        lambda timeout: method(*args, body, _content_type=request.patch_type, _request_timeout=timeout),
    )


def shown(names: list[str], limit: int = 5) -> str:
    """The first ``limit`` names, and how many more."""
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def api_error(request: ApiRequest, exc: exceptions.ApiException) -> Exception:
    """A clear, actionable error for an API answer that is not 2xx."""
    status = int(exc.status or 0)
    said = _status_message(exc)
    details: dict[str, object] = {"status": status, "request": str(request)}
    if status == 404:
        return PermanentError(f"{request.target} not found", details=details)
    if status == 403:
        grant = (
            f"in the Role, see {ROLE_FILE}"
            if request.namespace
            else f"in a ClusterRole: the {NODE_RBAC} component, written in {ROLE_FILE}"
        )
        return PermanentError(
            f"forbidden: the service account may not {request.verb} {request.resource} "
            f"{request.where} (grant verb {request.verb!r} on {request.resource} {grant}); "
            f"the API server said: {said}",
            details={
                **details,
                "missing_permission": {
                    "verb": request.verb,
                    "resource": request.resource,
                    "namespace": request.namespace,
                },
            },
        )
    if status == 401:
        return PermanentError(
            f"unauthorized: the Kubernetes API rejected the credentials: {said}", details=details
        )
    if status == 409:
        return Conflict(f"{request.target} changed since it was read: {said}", details=details)
    text = f"{_METHODS[request.verb]} {request.path} answered HTTP {status}: {said}"
    if status == 429 or status >= 500 or status == 0:
        return TemporaryError(text, details=details)
    return PermanentError(text, details=details)


def _status_message(exc: exceptions.ApiException) -> str:
    """The ``message`` of the API's Status object (with its ``details.causes``, e.g. the
    disruption budget that refused an eviction), else the HTTP reason."""
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        causes = (body.get("details") or {}).get("causes") if isinstance(body.get("details"), dict) else None
        said = [str(body["message"])]
        said += [str(c["message"]) for c in causes or [] if isinstance(c, dict) and c.get("message")]
        return " ".join(said)[:500]
    return str(exc.reason or "no reason given")


# ---- selectors ----------------------------------------------------------------------------


def selector_string(match_labels: dict[str, str] | None, expressions: list[Any] | None) -> str:
    """A label selector string for a ``LabelSelector`` (matchLabels + matchExpressions)."""
    parts = [f"{key}={value}" for key, value in sorted((match_labels or {}).items())]
    for expr in expressions or []:
        values = ",".join(expr.values or [])
        operator = expr.operator
        if operator == "In":
            parts.append(f"{expr.key} in ({values})")
        elif operator == "NotIn":
            parts.append(f"{expr.key} notin ({values})")
        elif operator == "Exists":
            parts.append(expr.key)
        elif operator == "DoesNotExist":
            parts.append(f"!{expr.key}")
        else:
            raise PermanentError(f"unsupported label selector operator {operator!r}")
    return ",".join(parts)
