"""A Kubernetes API for tests: kmock's emulator over real HTTP, with the API server
semantics the handlers rely on, plus small simulated controllers.

kmock's ``KubernetesEmulator`` stores objects and serves them; this subclass adds
what a real API server does and kmock does not:

- every write bumps ``metadata.resourceVersion`` (and ``generation`` on spec changes);
  a patch carrying a stale ``metadata.resourceVersion`` answers 409 Conflict;
- PATCH honours the content type: JSON merge patch (RFC 7386), JSON Patch, and
  strategic merge only for built-in kinds (415 for custom resources, like the real
  server); anything else is 415;
- GET/LIST answer in the real Status format; LIST filters by ``labelSelector``;
- POST creates (409 AlreadyExists when the name is taken); ``pods/NAME/log`` serves
  :attr:`Cluster.logs` as plain text, honouring ``tailLines``;
- RBAC: with a :class:`Policy` (a Role), a request it does not grant answers 403
  with the real message ("cannot patch resource ... in the namespace ...");
- every request is recorded as a :class:`Call` (verb, resource, body, answer) and
  ``hooks`` run before a request is served (to change state "concurrently").

The tests (and the end-to-end demo) play the controllers' part with
:class:`DeploymentController`, :class:`FlinkOperator` and :class:`JobController`
(which also writes the pods' logs, served at ``pods/NAME/log``).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import hashlib
import inspect
import itertools
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import jsonpatch
import kmock
import pytest
import yaml

import handlers  # noqa: F401 - registers the built-in handlers
from remediator import Context, Resources, Result
from remediator.handling.execution import execute
from remediator.handling.registry import default_registry
from remediator.settings import Settings
from tests.support.handlers import make_context

FLINK = kmock.resource("flink.apache.org", "v1beta1", "flinkdeployments")
DEPLOYMENTS = kmock.resource("apps", "v1", "deployments")
PODS = kmock.resource("", "v1", "pods")
REPLICASETS = kmock.resource("apps", "v1", "replicasets")
APPLICATIONS = kmock.resource("argoproj.io", "v1alpha1", "applications")
JOBS = kmock.resource("batch", "v1", "jobs")
STATEFULSETS = kmock.resource("apps", "v1", "statefulsets")
DAEMONSETS = kmock.resource("apps", "v1", "daemonsets")
HPAS = kmock.resource("autoscaling", "v2", "horizontalpodautoscalers")
PDBS = kmock.resource("policy", "v1", "poddisruptionbudgets")
CRONJOBS = kmock.resource("batch", "v1", "cronjobs")
NODES = kmock.resource("", "v1", "nodes")
EVENTS = kmock.resource("", "v1", "events")
KINDS = {
    FLINK: "FlinkDeployment",
    DEPLOYMENTS: "Deployment",
    PODS: "Pod",
    REPLICASETS: "ReplicaSet",
    APPLICATIONS: "Application",
    JOBS: "Job",
    STATEFULSETS: "StatefulSet",
    DAEMONSETS: "DaemonSet",
    HPAS: "HorizontalPodAutoscaler",
    PDBS: "PodDisruptionBudget",
    CRONJOBS: "CronJob",
    NODES: "Node",
    EVENTS: "Event",
}
CLUSTER_SCOPED = frozenset({NODES})
SCALABLE = frozenset({DEPLOYMENTS, STATEFULSETS})  # served with the ``scale`` subresource
REVISION = "deployment.kubernetes.io/revision"  # on a Deployment and its ReplicaSets
POD_TEMPLATE_HASH = "pod-template-hash"
BUILTIN_GROUPS = frozenset({"", "apps", "batch", "policy", "autoscaling"})
ROLE_FILE = Path(__file__).resolve().parents[2] / "deploy" / "base" / "role.yaml"
ARGOCD_DIR = ROLE_FILE.parent / "argocd"  # the Role in Argo CD's namespace, applied on its own
NODE_RBAC_DIR = ROLE_FILE.parents[1] / "components" / "node-rbac"  # kubernetes.cordon's ClusterRole
SERVICE_ACCOUNT = "system:serviceaccount:torghut:remediator"

_METHOD_VERBS = {"PATCH": "patch", "PUT": "update", "POST": "create"}


# ---- records and policy -------------------------------------------------------------------


@dataclass
class Call:
    """One request the emulator served, with its answer."""

    method: str
    verb: str
    group: str
    plural: str
    namespace: str | None
    name: str | None
    content_type: str
    body: Any
    query: dict[str, str]
    raw: str = ""  # the method and path with the query string, as sent
    status: int = 0
    at: float = field(default_factory=time.monotonic)

    @property
    def permission(self) -> tuple[str, str, str]:
        """(verb, apiGroup, resource): what RBAC must grant for this call."""
        return self.verb, self.group, self.plural

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.name else f"{self.namespace}"
        return f"{self.verb} {self.plural} {where} -> {self.status}"


def _verb(method: str, name: str | None, query: dict[str, str]) -> str:
    if method == "GET":
        if query.get("watch") in ("true", "1"):
            return "watch"
        return "get" if name else "list"
    if method == "DELETE":
        return "delete" if name else "deletecollection"
    return _METHOD_VERBS.get(method, method.lower())


@dataclass(frozen=True)
class Policy:
    """The rules of one Role (what the service account may do in its namespace), or of a
    ClusterRole (``namespace`` ``"*"``: every namespace, and cluster-scoped resources)."""

    namespace: str
    rules: tuple[tuple[frozenset[str], frozenset[str], frozenset[str]], ...]

    @classmethod
    def from_role(cls, role: dict[str, Any]) -> Policy:
        rules = tuple(
            (
                frozenset(rule.get("apiGroups") or []),
                frozenset(rule.get("resources") or []),
                frozenset(rule.get("verbs") or []),
            )
            for rule in role.get("rules") or []
        )
        return cls(namespace=role["metadata"]["namespace"], rules=rules)

    @classmethod
    def from_cluster_role(cls, role: dict[str, Any]) -> Policy:
        return cls.from_role({**role, "metadata": {**role["metadata"], "namespace": "*"}})

    @classmethod
    def shipped(cls) -> Policy:
        """The Role in ``deploy/base/role.yaml``."""
        return cls.from_role(role_documents()["Role"])

    @classmethod
    def nodes(cls) -> Policy:
        """The ClusterRole of the opt-in ``node-rbac`` component (``kubernetes.cordon``)."""
        role = yaml.safe_load((NODE_RBAC_DIR / "clusterrole.yaml").read_text(encoding="utf-8"))
        return cls.from_cluster_role(role)

    @classmethod
    def argocd(cls) -> Policy:
        """The Role in ``deploy/base/argocd``: reading Applications in Argo CD's namespace."""
        return _argocd_role()

    def without(self, verb: str, group: str, plural: str) -> Policy:
        """The same Role minus one permission (to provoke a 403)."""
        rules = []
        for groups, resources, verbs in self.rules:
            if group in groups and plural in resources and verb in verbs:
                rules.append((groups, resources, verbs - {verb}))
            else:
                rules.append((groups, resources, verbs))
        return Policy(self.namespace, tuple(rules))

    def grants(self) -> set[tuple[str, str, str]]:
        return {
            (verb, group, plural)
            for groups, resources, verbs in self.rules
            for group in groups
            for plural in resources
            for verb in verbs
        }

    def allows(self, verb: str, group: str, plural: str, namespace: str | None) -> bool:
        if self.namespace != "*" and namespace != self.namespace:
            return False
        return any(
            group in groups and plural in resources and verb in verbs
            for groups, resources, verbs in self.rules
        )


@dataclass(frozen=True)
class Policies:
    """Several Roles (each in its namespace) bound to the same service account."""

    roles: tuple[Policy, ...]

    @classmethod
    def shipped(cls, *, nodes: bool = False) -> Policies:
        """The overlay's Role and the Argo CD Role (``deploy/base/argocd``); with ``nodes``,
        also the opt-in ClusterRole of ``deploy/components/node-rbac``."""
        return cls((Policy.shipped(), Policy.argocd(), *([Policy.nodes()] if nodes else [])))

    def allows(self, verb: str, group: str, plural: str, namespace: str | None) -> bool:
        return any(role.allows(verb, group, plural, namespace) for role in self.roles)


def _argocd_role() -> Policy:
    from tests.support.kustomize import render

    [role] = [doc for doc in render(ARGOCD_DIR) if doc["kind"] == "Role"]
    return Policy.from_role(role)


OVERLAY = ROLE_FILE.parents[1] / "overlays" / "torghut"


def role_documents(overlay: Path = OVERLAY) -> dict[str, dict[str, Any]]:
    """The Role and RoleBinding as ``kubectl apply -k deploy/overlays/torghut`` installs them
    (``deploy/base/role.yaml`` and ``rolebinding.yaml``, namespaced by the overlay)."""
    from tests.support.kustomize import render

    docs = [doc for doc in render(overlay) if doc["kind"] in ("Role", "RoleBinding")]
    by_kind = {doc["kind"]: doc for doc in docs}
    if len(by_kind) != len(docs):
        raise ValueError(f"{overlay}: more than one Role or RoleBinding")
    return by_kind


# ---- label selectors and merge patches ----------------------------------------------------

_SET_EXPR = re.compile(r"^\s*([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ_EXPR = re.compile(r"^\s*([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)\s*$")
_EXISTS_EXPR = re.compile(r"^\s*(!?)([\w./-]+)\s*$")


def _split_selector(selector: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in selector:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current] if current.strip() else parts


def selector_matches(selector: str, labels: dict[str, str]) -> bool:
    """Kubernetes label selector semantics (equality- and set-based); ValueError if invalid."""
    for part in _split_selector(selector):
        if m := _SET_EXPR.match(part):
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if (labels.get(key) in values) != (op == "in"):
                return False
        elif m := _EQ_EXPR.match(part):
            key, op, value = m.groups()
            if (labels.get(key) == value) != (op != "!="):
                return False
        elif m := _EXISTS_EXPR.match(part):
            negated, key = m.groups()
            if (key in labels) == bool(negated):
                return False
        else:
            raise ValueError(f"unable to parse requirement: {part!r}")
    return True


def fields_match(fields: str, obj: dict[str, Any]) -> bool:
    """A field selector (``spec.nodeName=node-1,status.phase!=Succeeded``) on ``obj``."""
    for part in [p for p in fields.split(",") if p.strip()]:
        match = re.fullmatch(r"\s*([\w.]+)\s*(!=|==|=)\s*([^,]*?)\s*", part)
        if match is None:
            raise ValueError(f"invalid field selector: {part!r}")
        path, op, value = match.groups()
        found: Any = obj
        for key in path.split("."):
            found = found.get(key) if isinstance(found, dict) else None
        if (str(found or "") == value) != (op != "!="):
            return False
    return True


def _selects(budget: dict[str, Any], pod: dict[str, Any]) -> bool:
    wanted = ((budget.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    labels = pod["metadata"].get("labels") or {}
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


def _pod_ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def _scale_of(obj: dict[str, Any]) -> dict[str, Any]:
    """The ``autoscaling/v1`` Scale of a Deployment or StatefulSet."""
    meta, spec = obj["metadata"], obj.get("spec") or {}
    labels = (spec.get("selector") or {}).get("matchLabels") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion") if k in meta},
        "spec": {"replicas": spec.get("replicas", 1)},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        },
    }


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# ---- the emulator -------------------------------------------------------------------------


class ApiAnswer(Exception):
    """A non-2xx answer in the Kubernetes Status format."""

    def __init__(self, code: int, reason: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def response(self) -> aiohttp.web.Response:
        return aiohttp.web.json_response(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": self.message,
                "reason": self.reason,
                "details": self.details,
                "code": self.code,
            },
            status=self.code,
        )


def _resource_name(res: kmock.resource) -> str:
    return f"{res.plural}.{res.group}" if res.group else str(res.plural)


@attrs.define(kw_only=True)
class Cluster(kmock.KubernetesEmulator):
    """kmock's emulator with real API semantics for get/list/patch, RBAC and a call log."""

    policy: Policy | Policies | None = None
    absent: set[kmock.resource] = attrs.field(factory=set)  # CRDs not installed: 404
    calls: list[Call] = attrs.field(factory=list)
    hooks: list[Callable[[Call], Any]] = attrs.field(factory=list)  # may be async
    logs: dict[tuple[str, str], str] = attrs.field(factory=dict)  # (namespace, pod) -> its log
    _versions: Any = attrs.field(factory=lambda: itertools.count(1000))

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for res, kind in KINDS.items():
            self.resources[res] = kmock.ResourceInfo(
                kind=kind,
                namespaced=res not in CLUSTER_SCOPED,
                verbs={"get", "list", "patch", "create", "delete"},
            )

    # -- test-side API (synchronous: atomic with respect to the event loop) --

    # put/get below are the test-side API, not kmock's HTTP client methods of the same name
    def put(  # type: ignore[override]
        self, res: kmock.resource, namespace: str | None, obj: dict[str, Any]
    ) -> dict[str, Any]:
        """Create (or replace) an object, stamped like the API server does (``namespace``
        None: a cluster-scoped object, e.g. a Node)."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if namespace is not None:
            meta["namespace"] = namespace
        meta.update(
            uid=meta.get("uid") or str(uuid.uuid4()),
            resourceVersion=str(next(self._versions)),
            generation=1,
        )
        meta.setdefault("creationTimestamp", "2024-01-01T00:00:00Z")
        self.objects[res, namespace, meta["name"]] = obj
        return obj

    def get(  # type: ignore[override]
        self, res: kmock.resource, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        key = (res, namespace, name)
        if key not in self.objects or self.objects[key].deleted:
            return None
        return copy.deepcopy(self.objects[key].raw)

    def modify(
        self, res: kmock.resource, namespace: str | None, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch an object as a controller would (bumps resourceVersion)."""
        old = self.get(res, namespace, name)
        if old is None:
            raise KeyError(f"{_resource_name(res)} {namespace}/{name} does not exist")
        new = self._stamp(old, merge_patch(old, patch))
        self.objects[res, namespace, name].history.append(new)
        return new

    def remove(self, res: kmock.resource, namespace: str | None, name: str) -> None:
        self.objects[res, namespace, name].delete()

    def items(
        self, res: kmock.resource, namespace: str | None, selector: str = "", fields: str = ""
    ) -> list[dict[str, Any]]:
        """The objects of ``res`` in ``namespace`` (None: every namespace, or the
        cluster-scoped ones) matching a label ``selector`` and a field selector ``fields``."""
        found = []
        for (resource, ns, _), obj in self.objects.items():
            if resource == res and (namespace is None or ns == namespace) and not obj.deleted:
                labels = (obj.raw.get("metadata") or {}).get("labels") or {}
                if (not selector or selector_matches(selector, labels)) and fields_match(fields, obj.raw):
                    found.append(copy.deepcopy(obj.raw))
        return found

    def calls_to(self, res: kmock.resource, verb: str | None = None) -> list[Call]:
        return [
            c
            for c in self.calls
            if (c.group, c.plural) == (res.group, res.plural) and (verb is None or c.verb == verb)
        ]

    # -- serving --

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        if request.resource is None:
            return await super()._handle(request)
        call = self._record(request)
        try:
            for hook in list(self.hooks):
                if inspect.isawaitable(effect := hook(call)):
                    await effect
            response = await self._serve(request, call)
        except ApiAnswer as answer:
            response = answer.response()
        call.status = response.status
        self.calls.append(call)
        return response

    async def _serve(self, request: kmock.Request, call: Call) -> aiohttp.web.StreamResponse:
        res = request.resource
        assert res is not None
        if self.policy is not None and not self.policy.allows(
            call.verb, call.group, call.plural, call.namespace
        ):
            raise self._forbidden(call, res)
        if res in self.absent:  # the API server does not know the resource at all
            raise ApiAnswer(404, "NotFound", "the server could not find the requested resource")
        if request.subresource == "log" and res == PODS and call.verb == "get":
            return self._log(call)
        if request.subresource == "scale" and res in SCALABLE and call.verb in ("get", "patch"):
            return aiohttp.web.json_response(await self._scale(res, call))
        if request.subresource == "eviction" and res == PODS and call.verb == "create":
            return aiohttp.web.json_response(self._evict(call), status=201)
        if request.subresource:
            raise ApiAnswer(
                404,
                "NotFound",
                f"subresource {request.subresource!r} is not emulated (patch the object itself)",
            )
        if call.verb == "get":
            return aiohttp.web.json_response(self._fetch(res, call))
        if call.verb == "list":
            return aiohttp.web.json_response(self._list(res, call))
        if call.verb == "patch":
            return aiohttp.web.json_response(await self._patch(res, call))
        if call.verb == "create":
            return aiohttp.web.json_response(self._create(res, call), status=201)
        if call.verb == "delete":
            return aiohttp.web.json_response(self._delete(res, call))
        return await super()._handle(request)

    def _record(self, request: kmock.Request) -> Call:
        res = request.resource
        assert res is not None
        params = dict(request.params)
        content_type = str(request.headers.get("Content-Type", "")).split(";")[0].strip()
        body = json.loads(request.text) if request.text else None
        plural = f"{res.plural}/{request.subresource}" if request.subresource else str(res.plural)
        return Call(
            method=str(request.method.value).upper(),
            verb=_verb(str(request.method.value).upper(), request.name, params),
            group=str(res.group),
            plural=plural,
            namespace=request.namespace,
            name=request.name,
            content_type=content_type,
            body=body,
            query=params,
            raw=f"{str(request.method.value).upper()} {request.url.raw_path_qs}",
        )

    def _forbidden(self, call: Call, res: kmock.resource) -> ApiAnswer:
        subject = f'{_resource_name(res)} "{call.name}"' if call.name else _resource_name(res)
        where = f'in the namespace "{call.namespace}"' if call.namespace else "at the cluster scope"
        return ApiAnswer(
            403,
            "Forbidden",
            f'{subject} is forbidden: User "{SERVICE_ACCOUNT}" cannot {call.verb} resource '
            f'"{call.plural}" in API group "{call.group}" {where}',
            name=call.name or "",
            group=call.group,
            kind=call.plural,
        )

    def _not_found(self, res: kmock.resource, name: str | None) -> ApiAnswer:
        return ApiAnswer(
            404,
            "NotFound",
            f'{_resource_name(res)} "{name}" not found',
            name=name or "",
            group=res.group,
            kind=res.plural,
        )

    def _fetch(self, res: kmock.resource, call: Call) -> dict[str, Any]:
        obj = self.get(res, call.namespace, call.name or "")
        if obj is None:
            raise self._not_found(res, call.name)
        return obj

    def _list(self, res: kmock.resource, call: Call) -> dict[str, Any]:
        try:
            items = self.items(
                res, call.namespace, call.query.get("labelSelector", ""), call.query.get("fieldSelector", "")
            )
        except ValueError as exc:
            raise ApiAnswer(400, "BadRequest", f"unable to parse requirement: {exc}") from exc
        kind = KINDS.get(res, "Object")
        api_version = f"{res.group}/{res.version}" if res.group else str(res.version)
        return {
            "kind": f"{kind}List",
            "apiVersion": api_version,
            "items": items,
            "metadata": {"resourceVersion": str(next(self._versions))},
        }

    def _create(self, res: kmock.resource, call: Call) -> dict[str, Any]:
        body = call.body if isinstance(call.body, dict) else {}
        name = (body.get("metadata") or {}).get("name")
        if not name:
            raise ApiAnswer(422, "Invalid", f"{KINDS.get(res, 'Object')}: metadata.name: Required value")
        if self.get(res, call.namespace, name) is not None:
            raise ApiAnswer(
                409,
                "AlreadyExists",
                f'{_resource_name(res)} "{name}" already exists',
                name=name,
                group=res.group,
                kind=res.plural,
            )
        return self.put(res, call.namespace, body)

    def _delete(self, res: kmock.resource, call: Call) -> dict[str, Any]:
        """``DELETE``: a pod is marked terminating (``deletionTimestamp``) until its controller
        or kubelet (the test's simulation) removes it; ``gracePeriodSeconds: 0`` removes it at
        once, as does deleting anything else. ``preconditions.uid`` is checked (409)."""
        old = self._fetch(res, call)
        options = call.body if isinstance(call.body, dict) else {}
        wanted_uid = (options.get("preconditions") or {}).get("uid")
        if wanted_uid is not None and wanted_uid != old["metadata"]["uid"]:
            raise ApiAnswer(
                409,
                "Conflict",
                f"Precondition failed: UID in precondition: {wanted_uid}, UID in object meta: "
                f"{old['metadata']['uid']}",
                name=call.name or "",
                group=res.group,
                kind=res.plural,
            )
        grace = options.get("gracePeriodSeconds", call.query.get("gracePeriodSeconds"))
        if res != PODS or (grace is not None and int(grace) == 0):
            self.remove(res, call.namespace, call.name or "")
            return old
        if old["metadata"].get("deletionTimestamp"):
            return old
        default = (old.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
        return self.modify(
            res,
            call.namespace,
            call.name or "",
            {
                "metadata": {
                    "deletionTimestamp": "2024-01-01T00:00:00Z",
                    "deletionGracePeriodSeconds": int(default if grace is None else grace),
                }
            },
        )

    def _evict(self, call: Call) -> dict[str, Any]:
        """``POST pods/NAME/eviction`` as the API server answers it: the pod's
        PodDisruptionBudget (the disruption controller's arithmetic, done here) allows the
        disruption, and the pod is deleted; or 429 naming the budget."""
        pod = self._fetch(PODS, call)
        namespace = call.namespace or ""
        if not pod["metadata"].get("deletionTimestamp"):
            budgets = [b for b in self.items(PDBS, namespace) if _selects(b, pod)]
            if len(budgets) > 1:
                raise ApiAnswer(
                    500,
                    "InternalError",
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource "
                    "does not support.",
                )
            for budget in budgets:
                needed, healthy, allowed = self._disruptions(budget)
                if allowed < 1:
                    name = budget["metadata"]["name"]
                    raise ApiAnswer(
                        429,
                        "TooManyRequests",
                        "Cannot evict pod as it would violate the pod's disruption budget.",
                        causes=[
                            {
                                "reason": "DisruptionBudget",
                                "message": f"The disruption budget {name} needs {needed} healthy pods "
                                f"and has {healthy} currently",
                            }
                        ],
                    )
            self._delete(PODS, dataclasses.replace(call, body={}))
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}

    def _disruptions(self, budget: dict[str, Any]) -> tuple[int, int, int]:
        """(healthy pods needed, healthy pods now, disruptions allowed) of one budget."""
        spec = budget["spec"]
        selector = ",".join(f"{k}={v}" for k, v in sorted(spec["selector"]["matchLabels"].items()))
        pods = [p for p in self.items(PODS, budget["metadata"]["namespace"], selector) if not _terminating(p)]
        healthy = sum(1 for p in pods if _pod_ready(p))
        if "minAvailable" in spec:
            needed = int(spec["minAvailable"])
        else:
            needed = len(pods) - int(spec["maxUnavailable"])
        return needed, healthy, healthy - needed

    async def _scale(self, res: kmock.resource, call: Call) -> dict[str, Any]:
        """``GET``/``PATCH`` of the ``scale`` subresource: an ``autoscaling/v1`` Scale view of
        the workload; a patch changes the workload's ``spec.replicas`` (guarded by
        ``metadata.resourceVersion`` like any patch)."""
        obj = self._fetch(res, call)
        if call.verb == "patch":
            wanted = self._apply(res, call, _scale_of(obj))
            version = (wanted.get("metadata") or {}).get("resourceVersion")
            if version is not None and str(version) != obj["metadata"]["resourceVersion"]:
                raise ApiAnswer(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {_resource_name(res)} "{call.name}": the '
                    "object has been modified; please apply your changes to the latest version "
                    "and try again",
                )
            replicas = (wanted.get("spec") or {}).get("replicas")
            obj = self.modify(res, call.namespace, call.name or "", {"spec": {"replicas": replicas}})
            await self._buses[res].put({"type": "MODIFIED", "object": obj})
        return _scale_of(obj)

    def _log(self, call: Call) -> aiohttp.web.Response:
        """``GET .../pods/NAME/log?tailLines=N`` as the kubelet answers it: plain text."""
        namespace, name = call.namespace or "", call.name or ""
        if self.get(PODS, namespace, name) is None:
            raise self._not_found(PODS, name)
        lines = self.logs.get((namespace, name), "").splitlines(keepends=True)
        tail = int(call.query.get("tailLines", "0") or 0)
        text = "".join(lines[-tail:] if tail > 0 else lines)
        return aiohttp.web.Response(text=text, content_type="text/plain")

    async def _patch(self, res: kmock.resource, call: Call) -> dict[str, Any]:
        old = self._fetch(res, call)
        new = self._apply(res, call, old)
        # like the API server: a patch that sets metadata.resourceVersion (merge patch, or a
        # JSON Patch op on /metadata/resourceVersion) is a precondition on the version
        wanted = (new.get("metadata") or {}).get("resourceVersion")
        if wanted is not None and str(wanted) != old["metadata"]["resourceVersion"]:
            raise ApiAnswer(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {_resource_name(res)} "{call.name}": the '
                "object has been modified; please apply your changes to the latest version "
                "and try again",
                name=call.name or "",
                group=res.group,
                kind=res.plural,
            )
        new = self._stamp(old, new)
        # _fetch found the object, so the call names a namespace and a name
        self.objects[res, call.namespace, call.name].history.append(new)  # type: ignore[index]
        await self._buses[res].put({"type": "MODIFIED", "object": new})
        return new

    def _apply(self, res: kmock.resource, call: Call, old: dict[str, Any]) -> dict[str, Any]:
        kind = call.content_type
        custom = res.group not in BUILTIN_GROUPS
        if kind == "application/json-patch+json" and isinstance(call.body, list):
            try:
                return dict(jsonpatch.apply_patch(old, call.body))
            except jsonpatch.JsonPatchException as exc:
                raise ApiAnswer(422, "Invalid", f"the JSON patch failed: {exc}") from exc
        if kind == "application/json-patch+json":
            raise ApiAnswer(
                400,
                "BadRequest",
                "a JSON Patch must be a list of operations; got "
                f"{type(call.body).__name__} (was a merge patch meant?)",
            )
        if kind == "application/merge-patch+json" or (
            kind == "application/strategic-merge-patch+json" and not custom
        ):
            if not isinstance(call.body, dict):
                raise ApiAnswer(400, "BadRequest", "a merge patch must be a JSON object")
            return dict(merge_patch(old, call.body))
        accepted = "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
        if not custom:
            accepted += ", application/strategic-merge-patch+json"
        raise ApiAnswer(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted media types include: {accepted}",
        )

    def _stamp(self, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        """Keep identity fields; bump resourceVersion, and generation when spec changed."""
        meta = new.setdefault("metadata", {})
        for key in ("name", "namespace", "uid", "creationTimestamp"):
            if key in old.get("metadata", {}):
                meta[key] = old["metadata"][key]
        generation = int(old.get("metadata", {}).get("generation") or 1)
        meta["generation"] = generation + (1 if new.get("spec") != old.get("spec") else 0)
        meta["resourceVersion"] = str(next(self._versions))
        return new


# ---- running it ---------------------------------------------------------------------------


def write_kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "emulator",
                "clusters": [{"name": "emulator", "cluster": {"server": server}}],
                "users": [{"name": "remediator", "user": {"token": "emulator-token"}}],
                "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "remediator"}}],
            }
        ),
        encoding="utf-8",
    )
    return path


@contextlib.asynccontextmanager
async def kube_env(
    directory: Path, monkeypatch: pytest.MonkeyPatch, *, policy: Policy | Policies | None = None
) -> AsyncIterator[Cluster]:
    """A running :class:`Cluster` that the handlers reach through ``KUBECONFIG``.

    The Roles shipped in ``deploy/base/role.yaml`` and ``deploy/base/argocd`` are enforced
    unless ``policy`` says otherwise, so every handler test also checks the RBAC.
    """
    async with running_cluster(directory, policy=policy or Policies.shipped()) as (cluster, path):
        monkeypatch.setenv("KUBECONFIG", str(path))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)  # never in-cluster here
        yield cluster


@contextlib.asynccontextmanager
async def running_cluster(
    directory: Path, *, policy: Policy | Policies | None = None
) -> AsyncIterator[tuple[Cluster, Path]]:
    """A :class:`Cluster` on a free port and a kubeconfig file pointing at it."""
    async with Cluster(policy=policy) as cluster, kmock.Server(cluster) as server:
        kubeconfig = write_kubeconfig(directory / "kubeconfig", str(server.url).rstrip("/"))
        yield cluster, kubeconfig


async def run_handler(
    name: str, params: dict[str, Any], resources: Resources, *, limit: float = 60.0, **context: Any
) -> tuple[Result, Context]:
    """Validate ``params`` and run handler ``name`` through the real executor."""
    spec = default_registry.get(name)
    assert spec is not None, f"handler {name!r} is not registered"
    ctx = make_context(resources, deadline=limit, **context)
    result = await execute(spec, spec.params.model_validate(params), ctx, timeout=limit)
    return result, ctx


@contextlib.asynccontextmanager
async def app_resources() -> AsyncIterator[Resources]:
    """The app's resource owner, closed at the end like at shutdown."""
    resources = Resources(Settings())
    try:
        yield resources
    finally:
        await resources.aclose()


# ---- objects and simulated controllers ----------------------------------------------------


def flink_deployment(
    name: str, *, job: str, lifecycle: str, nonce: int | None = None, error: str = ""
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "image": "flink:1.18",
        "flinkVersion": "v1_18",
        "job": {"jarURI": "local:///opt/ta.jar", "parallelism": 1, "upgradeMode": "last-state"},
    }
    if nonce is not None:
        spec["restartNonce"] = nonce
    status: dict[str, Any] = {"jobStatus": {"state": job, "jobName": name}, "lifecycleState": lifecycle}
    if error:
        status["error"] = error
    return {
        "apiVersion": "flink.apache.org/v1beta1",
        "kind": "FlinkDeployment",
        "metadata": {"name": name},
        "spec": spec,
        "status": status,
    }


def application(
    name: str,
    *,
    self_heal: bool | None,
    repo: str = "https://github.com/torghut/gitops.git",
    path: str = "apps/jangar",
    revision: str = "main",
    sync: str = "Synced",
) -> dict[str, Any]:
    """An Argo CD Application; ``self_heal=None``: no automated sync policy at all."""
    spec: dict[str, Any] = {
        "project": "default",
        "source": {"repoURL": repo, "path": path, "targetRevision": revision},
        "destination": {"server": "https://kubernetes.default.svc", "namespace": "torghut"},
    }
    if self_heal is not None:
        spec["syncPolicy"] = {"automated": {"prune": True, "selfHeal": self_heal}}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name},
        "spec": spec,
        "status": {"sync": {"status": sync, "revision": "0123abc"}, "health": {"status": "Healthy"}},
    }


def deployment(
    name: str,
    *,
    replicas: int,
    labels: dict[str, str],
    annotations: dict[str, str] | None = None,
    containers: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": dict(labels)}
    if annotations:
        meta["annotations"] = dict(annotations)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "strategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {"containers": containers or [{"name": name, "image": f"{name}:1"}]},
            },
        },
        "status": {},
    }


@dataclass
class DeploymentController:
    """Plays the Deployment controller, the ReplicaSet controller and the kubelet for one
    Deployment.

    Each pod template gets a ReplicaSet (``<name>-<pod-template-hash>``, owned by the
    Deployment, with the ``deployment.kubernetes.io/revision`` the Deployment also
    carries); pods are labelled with the hash and owned by their ReplicaSet. Pods follow
    ``spec.replicas`` (ready after ``ready_after`` ticks); a changed template rolls out
    with maxSurge 1 and maxUnavailable 0 (an old pod goes once a new one is ready).
    Deleted pods stay listed, terminating, for ``terminate_after`` ticks, like a real
    grace period. ``status`` is written when it changes. It counts the most pods that
    ever existed at once (``max_pods``), terminating ones included.
    """

    cluster: Cluster
    namespace: str
    name: str
    tick: float = 0.02
    ready_after: int = 3
    terminate_after: int = 5
    max_pods: int = 0
    created: list[str] = field(default_factory=list)
    _ages: dict[str, int] = field(default_factory=dict)

    def step(self) -> None:
        dep = self.cluster.get(DEPLOYMENTS, self.namespace, self.name)
        if dep is None:
            return
        labels = dep["spec"]["selector"]["matchLabels"]
        selector = ",".join(f"{k}={v}" for k, v in labels.items())
        template_hash = self._replica_set(dep)
        pods = self.cluster.items(PODS, self.namespace, selector)
        for pod in pods:
            self._age(pod)
        live = [p for p in self.cluster.items(PODS, self.namespace, selector) if not _terminating(p)]
        new = [p for p in live if p["metadata"]["labels"].get(POD_TEMPLATE_HASH) == template_hash]
        old = [p for p in live if p not in new]
        desired = int(dep["spec"].get("replicas", 1))
        for _ in range(min(desired - len(new), desired + 1 - len(live))):
            self._create_pod(dep, template_hash)
        ready_new = sum(1 for p in new if _ready(p))
        for pod in old[: max(0, len(old) + ready_new - desired)]:
            self._delete(pod)
        for pod in new[desired:]:
            self._delete(pod)
        self.max_pods = max(self.max_pods, len(self.cluster.items(PODS, self.namespace, selector)))
        self._write_status(dep, selector, desired, template_hash)

    def _replica_set(self, dep: dict[str, Any]) -> str:
        """The pod-template-hash of the Deployment's template; its ReplicaSet made if new.

        A template that an older ReplicaSet already has (a rollback, or a change undone)
        reuses that ReplicaSet, which gets the next revision, as the Deployment controller does.
        """
        template = dep["spec"]["template"]
        digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        name = f"{self.name}-{digest}"
        others = [
            int(rs["metadata"]["annotations"][REVISION])
            for rs in self.cluster.items(REPLICASETS, self.namespace)
            if _owned_by(rs, dep) and rs["metadata"]["name"] != name
        ]
        existing = self.cluster.get(REPLICASETS, self.namespace, name)
        if existing is not None and int(existing["metadata"]["annotations"][REVISION]) < max(
            others, default=0
        ):
            revision = str(max(others) + 1)
            self.cluster.modify(
                REPLICASETS, self.namespace, name, {"metadata": {"annotations": {REVISION: revision}}}
            )
            self.cluster.modify(
                DEPLOYMENTS, self.namespace, self.name, {"metadata": {"annotations": {REVISION: revision}}}
            )
        if existing is None:
            revision = str(max(others, default=0) + 1)
            rs_labels = {**template["metadata"]["labels"], POD_TEMPLATE_HASH: digest}
            self.cluster.put(
                REPLICASETS,
                self.namespace,
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "metadata": {
                        "name": name,
                        "labels": rs_labels,
                        "annotations": {REVISION: revision},
                        "ownerReferences": [_owner(dep)],
                    },
                    "spec": {"selector": {"matchLabels": rs_labels}, "template": template},
                },
            )
            self.cluster.modify(
                DEPLOYMENTS, self.namespace, self.name, {"metadata": {"annotations": {REVISION: revision}}}
            )
        return digest

    def _age(self, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        age = self._ages.get(name, 0) + 1
        self._ages[name] = age
        if _terminating(pod):
            if age >= self.terminate_after:
                self.cluster.remove(PODS, self.namespace, name)
        elif age == self.ready_after:
            self.cluster.modify(
                PODS,
                self.namespace,
                name,
                {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}},
            )

    def _delete(self, pod: dict[str, Any]) -> None:
        self.cluster.modify(
            PODS,
            self.namespace,
            pod["metadata"]["name"],
            {
                "metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"},
                "status": {"conditions": [{"type": "Ready", "status": "False"}]},
            },
        )
        self._ages[pod["metadata"]["name"]] = 0

    def _create(self, labels: dict[str, str]) -> None:
        """A pod with ``labels`` and no owner (for subclasses that play their own controller)."""
        name = f"{self.name}-{uuid.uuid4().hex[:5]}"
        self.cluster.put(
            PODS,
            self.namespace,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "labels": dict(labels)},
                "spec": {"containers": [{"name": self.name, "image": f"{self.name}:1"}]},
                "status": {"phase": "Pending"},
            },
        )
        self._ages[name] = 0
        self.created.append(name)

    def _create_pod(self, dep: dict[str, Any], template_hash: str) -> None:
        replica_set = f"{self.name}-{template_hash}"
        owner = self.cluster.get(REPLICASETS, self.namespace, replica_set)
        assert owner is not None
        name = f"{replica_set}-{uuid.uuid4().hex[:5]}"
        template = dep["spec"]["template"]
        self.cluster.put(
            PODS,
            self.namespace,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "labels": {**template["metadata"]["labels"], POD_TEMPLATE_HASH: template_hash},
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "ReplicaSet",
                            "name": replica_set,
                            "uid": owner["metadata"]["uid"],
                            "controller": True,
                        }
                    ],
                },
                "spec": copy.deepcopy(template["spec"]),
                "status": {"phase": "Pending"},
            },
        )
        self._ages[name] = 0
        self.created.append(name)

    def _write_status(self, dep: dict[str, Any], selector: str, desired: int, template_hash: str) -> None:
        pods = self.cluster.items(PODS, self.namespace, selector)
        live = [p for p in pods if not _terminating(p)]
        ready = [p for p in live if _ready(p)]
        updated = [p for p in live if p["metadata"]["labels"].get(POD_TEMPLATE_HASH) == template_hash]
        status = {
            "replicas": len(live),
            "readyReplicas": len(ready),
            "availableReplicas": len(ready),
            "updatedReplicas": len(updated),
            "observedGeneration": dep["metadata"]["generation"],
        }
        if {k: (dep.get("status") or {}).get(k) for k in status} != status:
            self.cluster.modify(DEPLOYMENTS, self.namespace, self.name, {"status": status})

    async def run(self) -> None:
        while True:
            self.step()
            await asyncio.sleep(self.tick)


def _terminating(pod: dict[str, Any]) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def _ready(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running"


def _owner(dep: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": dep["metadata"]["name"],
        "uid": dep["metadata"]["uid"],
        "controller": True,
    }


def _owned_by(obj: dict[str, Any], dep: dict[str, Any]) -> bool:
    return any(
        ref.get("uid") == dep["metadata"]["uid"] for ref in obj["metadata"].get("ownerReferences") or []
    )


@dataclass
class TaskManagerPods:
    """The TaskManager pods of one FlinkDeployment, as Flink (native mode) and the kubelet keep them.

    They carry the labels the operator reports in ``status.taskManager.labelSelector``
    (``component=taskmanager,app=<name>``, ReconciliationUtils.getTaskManagerInfo) and
    turn Ready ``ready_after`` ticks after being created (``None``: never, e.g. Pending
    for want of resources).
    """

    cluster: Cluster
    namespace: str
    name: str
    count: int = 1
    ready_after: int | None = 2
    _ages: dict[str, int] = field(default_factory=dict)

    @property
    def selector(self) -> str:
        return f"component=taskmanager,app={self.name}"

    def status(self) -> dict[str, Any]:
        """``status.taskManager`` (the scale subresource): how many, and how to find them."""
        return {"labelSelector": self.selector, "replicas": self.count}

    def remove(self) -> None:
        """The redeploy deleted them (the JobManager asks for new ones)."""
        for pod in self.cluster.items(PODS, self.namespace, self.selector):
            self.cluster.remove(PODS, self.namespace, pod["metadata"]["name"])
        self._ages.clear()

    def create(self) -> None:
        """The JobManager requests its TaskManagers (once the job is scheduled): Pending pods."""
        if self._ages:
            return
        for i in range(1, self.count + 1):
            name = f"{self.name}-taskmanager-1-{i}"
            self.cluster.put(
                PODS,
                self.namespace,
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": name, "labels": {"component": "taskmanager", "app": self.name}},
                    "spec": {"containers": [{"name": "flink-main-container", "image": "flink:1.18"}]},
                    "status": {"phase": "Pending"},
                },
            )
            self._ages[name] = 0

    def tick(self) -> None:
        for name, age in list(self._ages.items()):
            self._ages[name] = age + 1
            if self.ready_after is not None and age + 1 == self.ready_after:
                self.cluster.modify(
                    PODS,
                    self.namespace,
                    name,
                    {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}},
                )

    def ready(self) -> int:
        pods = self.cluster.items(PODS, self.namespace, self.selector)
        return sum(
            1
            for pod in pods
            if any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (pod.get("status") or {}).get("conditions") or []
            )
        )


@dataclass
class FlinkOperator:
    """Plays the Flink Kubernetes Operator for one FlinkDeployment.

    When ``spec.restartNonce`` changes, it walks the status through ``after_restart``
    (one (job, lifecycle[, error]) per tick), the way the operator redeploys a job.
    Like the real operator it also reports ``status.jobManagerDeploymentStatus``
    (DEPLOYING, then DEPLOYED_NOT_READY, READY from tick ``jobmanager_ready_after``
    on; ``None``: never) and ``status.taskManager`` (set at the redeploy's
    reconciliation); the TaskManager pods (:class:`TaskManagerPods`) are deleted at
    the redeploy, created once the job is CREATED or RUNNING, and turn Ready
    ``taskmanagers_ready_after`` ticks later. Both keep moving after the walk ends.
    """

    cluster: Cluster
    namespace: str
    name: str
    after_restart: list[tuple[str, ...]] = field(
        default_factory=lambda: [
            ("RECONCILING", "UPGRADING"),
            ("RECONCILING", "DEPLOYED"),
            ("CREATED", "DEPLOYED"),
            ("RUNNING", "DEPLOYED"),
            ("RUNNING", "STABLE"),
        ]
    )
    tick: float = 0.05
    restarts: int = 0
    jobmanager_ready_after: int | None = 2
    taskmanagers: int = 1
    taskmanagers_ready_after: int | None = 2

    def __post_init__(self) -> None:
        self._seen = self._nonce()
        self._ticks: int | None = None  # since the last restart
        self.pods = TaskManagerPods(
            self.cluster, self.namespace, self.name, self.taskmanagers, self.taskmanagers_ready_after
        )

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            nonce = self._nonce()
            if nonce != self._seen:
                self._seen = nonce
                self.restarts += 1
                await self._walk()
            elif self._ticks is not None:
                self._settle()

    def _nonce(self) -> Any:
        obj = self.cluster.get(FLINK, self.namespace, self.name) or {}
        return (obj.get("spec") or {}).get("restartNonce")

    def jobmanager(self) -> str:
        """``status.jobManagerDeploymentStatus`` at this tick since the restart."""
        ticks = self._ticks or 0
        if ticks == 0:
            return "DEPLOYING"
        if self.jobmanager_ready_after is not None and ticks >= self.jobmanager_ready_after:
            return "READY"
        return "DEPLOYED_NOT_READY"

    async def _walk(self) -> None:
        self._ticks = 0
        self.pods.remove()
        for job, lifecycle, *error in self.after_restart:
            self.pods.tick()  # the kubelet first: what a status write reports has happened
            if job in ("CREATED", "RUNNING"):
                self.pods.create()
            status: dict[str, Any] = {
                "jobStatus": {"state": job},
                "lifecycleState": lifecycle,
                "error": error[0] if error else None,
                "jobManagerDeploymentStatus": self.jobmanager(),
                "taskManager": self.pods.status(),
            }
            self.cluster.modify(FLINK, self.namespace, self.name, {"status": status})
            await asyncio.sleep(self.tick)
            self._ticks += 1

    def _settle(self) -> None:
        """After the walk: the kubelet and the JobManager keep going; the status follows."""
        assert self._ticks is not None
        self._ticks += 1
        self.pods.tick()
        obj = self.cluster.get(FLINK, self.namespace, self.name) or {}
        if (obj.get("status") or {}).get("jobManagerDeploymentStatus") != self.jobmanager():
            self.cluster.modify(
                FLINK,
                self.namespace,
                self.name,
                {"status": {"jobManagerDeploymentStatus": self.jobmanager()}},
            )


@dataclass
class JobController:
    """Plays the Job controller and the kubelet for the Jobs of one namespace.

    For each new Job it creates one pod (labelled ``job-name``, as the real controller
    does) with ``log`` as its log, marks the Job active, and after ``run_ticks`` ticks
    ends it as ``outcome`` says: ``succeed`` (Complete), ``fail`` (Failed,
    BackoffLimitExceeded), ``deadline`` (Failed, DeadlineExceeded) or ``hang`` (never).
    """

    cluster: Cluster
    namespace: str
    outcome: str = "succeed"
    log: str = "checking\nrepaired\n"
    run_ticks: int = 3
    tick: float = 0.02
    pods: list[str] = field(default_factory=list)
    _ages: dict[str, int] = field(default_factory=dict)

    def step(self) -> None:
        for job in self.cluster.items(JOBS, self.namespace):
            name = job["metadata"]["name"]
            if any(c.get("status") == "True" for c in (job.get("status") or {}).get("conditions") or []):
                continue
            if name not in self._ages:
                self._start(job)
                continue
            self._ages[name] += 1
            if self._ages[name] >= self.run_ticks and self.outcome != "hang":
                self._finish(name)

    def _start(self, job: dict[str, Any]) -> None:
        name = job["metadata"]["name"]
        pod = f"{name}-{uuid.uuid4().hex[:5]}"
        labels = {**job["spec"]["template"]["metadata"].get("labels", {}), "job-name": name}
        labels["batch.kubernetes.io/job-name"] = name
        self.cluster.put(
            PODS,
            self.namespace,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": pod, "labels": labels},
                "spec": copy.deepcopy(job["spec"]["template"]["spec"]),
                "status": {"phase": "Running"},
            },
        )
        self.cluster.logs[self.namespace, pod] = self.log
        self.pods.append(pod)
        self._ages[name] = 0
        self.cluster.modify(JOBS, self.namespace, name, {"status": {"active": 1}})

    def _finish(self, name: str) -> None:
        ok = self.outcome == "succeed"
        reason, message = {
            "succeed": ("", ""),
            "fail": ("BackoffLimitExceeded", "Job has reached the specified backoff limit"),
            "deadline": ("DeadlineExceeded", "Job was active longer than specified deadline"),
        }[self.outcome]
        condition = {"type": "Complete" if ok else "Failed", "status": "True"}
        if reason:
            condition.update(reason=reason, message=message)
        status = {"active": None, "succeeded": 1 if ok else None, "failed": None if ok else 1}
        self.cluster.modify(JOBS, self.namespace, name, {"status": {**status, "conditions": [condition]}})
        for pod in self.cluster.items(PODS, self.namespace, f"job-name={name}"):
            phase = "Succeeded" if ok else "Failed"
            self.cluster.modify(PODS, self.namespace, pod["metadata"]["name"], {"status": {"phase": phase}})

    async def run(self) -> None:
        while True:
            self.step()
            await asyncio.sleep(self.tick)


@contextlib.asynccontextmanager
async def background(*runners: Callable[[], Any]) -> AsyncIterator[None]:
    """Run simulated controllers while the block runs; stop them (no leaked tasks) after."""
    tasks = [asyncio.create_task(run(), name=f"sim:{getattr(run, '__qualname__', run)}") for run in runners]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def permissions(calls: Iterable[Call]) -> set[tuple[str, str, str]]:
    return {call.permission for call in calls}


def expand(text: str, env: dict[str, str]) -> str:
    """What the kubelet makes of ``$(VAR)`` references in a container's command, args or env
    value (Kubernetes' expansion: ``$$`` is one ``$``; ``$(NAME)`` is NAME's value when
    defined, else left as written)."""
    out, cursor, checkpoint = [], 0, 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            rest = text[cursor + 1 :]
            if rest[0] == "$":
                read, advance = "$", 1
            elif rest[0] == "(" and ")" in rest[1:]:
                name = rest[1 : rest.index(")")]
                read, advance = env.get(name, f"$({name})"), len(name) + 2
            elif rest[0] == "(":
                read, advance = "$(", 1
            else:
                read, advance = "$" + rest[0], 1
            out.append(read)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + text[checkpoint:]


def container_view(container: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """The container's argv (command + args) and environment as its process sees them."""
    env: dict[str, str] = {}
    for item in container.get("env") or []:  # each value sees the variables defined before it
        env[item["name"]] = expand(item.get("value", ""), env)
    argv = [expand(part, env) for part in [*container.get("command", []), *container.get("args", [])]]
    return argv, env
