"""Argo CD awareness shared by the Kubernetes handlers.

Before a handler changes an object it asks whether Argo CD manages it: the tracking
annotation ``argocd.argoproj.io/tracking-id`` (``<app>:<group>/<kind>:<ns>/<name>``,
``<app-namespace>_<app>`` for apps in any namespace) or else the tracking label
(``app.kubernetes.io/instance`` by default) names an ``Application``
(``argoproj.io/v1alpha1``, in the Argo CD namespace, ``argocd`` by default). Its
``spec.syncPolicy.automated.selfHeal``, its source and its sync status decide what the
handler may do: a self-healing app reverts a live change within seconds, so the
handlers refuse unless the rule says ``gitops: override``; without self-heal the
change is made and the drift (and the change to commit to Git) is reported.
No tracking, no such Application, or no Argo CD at all (the CRD is absent: 404):
not managed, and nothing changes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator

from handlers.kube import ApiRequest, Label, api_client, client, send
from remediator import Context, HandlerParams, PermanentError, dns1123_label, dns1123_subdomain

TRACKING_ID = "argocd.argoproj.io/tracking-id"
TRACKING_LABEL = "app.kubernetes.io/instance"
ARGOCD_NAMESPACE = "argocd"
GROUP, VERSION, PLURAL, KIND = "argoproj.io", "v1alpha1", "applications", "Application"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
OVERRIDE_HINT = "or set `gitops: override` in the rule's params to change the live object anyway"

_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")


def label_key(value: str) -> str:
    """A label key: an optional DNS-subdomain prefix and ``/``, then a name of at most 63."""
    prefix, _, name = value.rpartition("/")
    if prefix:
        dns1123_subdomain(prefix)
    if len(name) > 63 or not _LABEL_NAME.fullmatch(name):
        raise ValueError(f"{value!r} is not a valid label key")
    return value


LabelKey = Annotated[str, AfterValidator(label_key)]


class GitOpsParams(HandlerParams):
    """Params every Kubernetes handler takes: how to treat an object Argo CD manages."""

    gitops: Literal["respect", "override"] = "respect"
    """see [Argo CD](../how-to/argocd.md#gitops)"""
    argocd_namespace: Label = ARGOCD_NAMESPACE
    """see [Argo CD](../how-to/argocd.md#gitops)"""
    argocd_tracking_label: LabelKey = TRACKING_LABEL
    """see [Argo CD](../how-to/argocd.md#gitops)"""


@dataclass(frozen=True)
class Source:
    repo_url: str
    path: str
    revision: str

    def __str__(self) -> str:
        where = f"{self.repo_url} {self.path}" if self.path else self.repo_url
        return f"{where} (revision {self.revision or 'HEAD'})"


@dataclass(frozen=True)
class App:
    """The Argo CD Application that manages an object."""

    namespace: str
    name: str
    tracked_by: str  # how the object names it
    self_heal: bool
    automated: bool
    sources: tuple[Source, ...]
    sync: str  # status.sync.status: Synced, OutOfSync, Unknown

    @property
    def ref(self) -> str:
        return f"Application {self.namespace}/{self.name}"

    @property
    def in_git(self) -> str:
        return " or ".join(str(s) for s in self.sources) or "the Application's source"

    def summary(self) -> str:
        policy = (
            "self-heal on"
            if self.self_heal
            else ("auto-sync without self-heal" if self.automated else "manual sync")
        )
        sync = self.sync or "unknown"
        return (
            f"managed by Argo CD {self.ref} ({self.tracked_by}; {policy}; sync {sync}; source {self.in_git})"
        )

    def details(self) -> dict[str, Any]:
        return {
            "application": f"{self.namespace}/{self.name}",
            "self_heal": self.self_heal,
            "sync": self.sync,
            "sources": [
                {"repoURL": s.repo_url, "path": s.path, "targetRevision": s.revision} for s in self.sources
            ],
        }

    @classmethod
    def of(cls, obj: dict[str, Any], namespace: str, name: str, tracked_by: str) -> App:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        automated = (spec.get("syncPolicy") or {}).get("automated")
        raw = spec.get("sources") or ([spec["source"]] if spec.get("source") else [])
        sources = tuple(
            Source(
                str(s.get("repoURL") or ""),
                str(s.get("path") or s.get("chart") or ""),
                str(s.get("targetRevision") or ""),
            )
            for s in raw
            if isinstance(s, dict)
        )
        return cls(
            namespace=namespace,
            name=name,
            tracked_by=tracked_by,
            self_heal=isinstance(automated, dict) and automated.get("selfHeal") is True,
            automated=isinstance(automated, dict),
            sources=sources,
            sync=str((status.get("sync") or {}).get("status") or ""),
        )


def _tracked(
    annotations: dict[str, str], labels: dict[str, str], params: GitOpsParams
) -> tuple[str, str, str] | None:
    """(namespace, name, how) of the Application the object names, or None."""
    if tracking := annotations.get(TRACKING_ID):
        app = tracking.split(":", 1)[0]
        namespace, _, name = app.rpartition("_")
        how = f"annotation {TRACKING_ID}={tracking}"
        try:
            return dns1123_label(namespace or params.argocd_namespace), dns1123_subdomain(name), how
        except ValueError as exc:
            raise PermanentError(f"the {how} names no valid Application: {exc}") from exc
    if (value := labels.get(params.argocd_tracking_label)) is not None:
        try:
            name = dns1123_subdomain(value)
        except ValueError:
            return None  # not an Application name: set by something else (e.g. Helm)
        return params.argocd_namespace, name, f"label {params.argocd_tracking_label}={value}"
    return None


def application_request(namespace: str, name: str) -> ApiRequest:
    return ApiRequest(
        verb="get", group=GROUP, version=VERSION, plural=PLURAL, kind=KIND, namespace=namespace, name=name
    )


async def managing_app(
    ctx: Context,
    params: GitOpsParams,
    what: str,
    annotations: dict[str, str] | None,
    labels: dict[str, str] | None,
) -> App | None:
    """The Application managing ``what`` (from its annotations and labels), or None; a step either way."""
    tracked = _tracked(annotations or {}, labels or {}, params)
    if tracked is None:  # not managed: no step, no request, nothing changes
        return None
    namespace, name, how = tracked
    request = application_request(namespace, name)
    api = client.CustomObjectsApi(await api_client(ctx))
    try:
        obj = await send(
            ctx,
            request,
            lambda timeout: api.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, _request_timeout=timeout
            ),
        )
    except PermanentError as exc:
        if exc.details.get("status") != 404:
            raise
        ctx.step(
            "gitops",
            f"{what} carries the {how}, but there is no {request.target} (or no Argo CD: 404): not managed",
        )
        return None
    app = App.of(obj, namespace, name, how)
    ctx.step("gitops", f"{what}: {app.summary()}", **app.details())
    return app


def replicas_in_git(annotations: dict[str, str] | None, managed_fields: list[Any] | None) -> bool | None:
    """Whether the manifest in Git sets spec.replicas (see :func:`field_in_git`)."""
    return field_in_git(annotations, managed_fields, ("spec", "replicas"))


def field_in_git(
    annotations: dict[str, str] | None, managed_fields: list[Any] | None, path: tuple[str, ...]
) -> bool | None:
    """Whether the manifest in Git sets the field at ``path`` (e.g. ``("spec", "replicas")``):
    from the last applied configuration (Argo CD's client-side apply) or Argo CD's managed
    fields (server-side apply); None: no sign either way."""
    last = (annotations or {}).get(LAST_APPLIED)
    if last:
        try:
            found: Any = json.loads(last)
        except ValueError:
            return None
        for key in path:
            if not isinstance(found, dict) or key not in found:
                return False
            found = found[key]
        return True
    for entry in managed_fields or []:
        manager = str(getattr(entry, "manager", "") or "")
        fields = getattr(entry, "fields_v1", None)
        if "argocd" in manager and isinstance(fields, dict):
            for key in path:
                if not isinstance(fields, dict) or f"f:{key}" not in fields:
                    return False
                fields = fields[f"f:{key}"]
            return True
    return None


def refusal(app: App, what: str, why: str, todo: str) -> str:
    """The message of a change refused because ``app`` self-heals."""
    return f"{what} is {app.summary()}: {why}. Not changed. {todo}; {OVERRIDE_HINT}"


def drift(app: App, commit: str) -> str:
    """The drift a live change leaves in ``app``, and the change to commit."""
    if app.self_heal:
        return (
            f"Argo CD drift: {app.ref} self-heals and will revert this unless Git has the same "
            f"change (changed anyway: gitops: override); change to commit: {commit}"
        )
    return (
        f"Argo CD drift: {app.ref} will show OutOfSync until Git has the same change; "
        f"change to commit: {commit}"
    )
