"""Deployments and pods for the Kubernetes handlers: the requests that name them, and one
Deployment read and patched through the app's client (``kubernetes.bounce`` and
``kubernetes.set_env`` share it; each turns the read into its own view)."""

from __future__ import annotations

from typing import Any

from handlers.kube import ApiRequest, client, send, send_patch
from remediator import Context


def deployment_request(namespace: str, name: str) -> ApiRequest:
    """``GET /apis/apps/v1/namespaces/<namespace>/deployments/<name>``."""
    return ApiRequest(
        verb="get",
        group="apps",
        version="v1",
        plural="deployments",
        kind="Deployment",
        namespace=namespace,
        name=name,
    )


def list_request(namespace: str, selector: str, plural: str = "pods", kind: str = "Pod") -> ApiRequest:
    """A list of pods (or of ReplicaSets) in ``namespace`` matching ``selector``."""
    return ApiRequest(
        verb="list",
        group="apps" if plural == "replicasets" else "",
        version="v1",
        plural=plural,
        kind=kind,
        namespace=namespace,
        label_selector=selector,
    )


class DeploymentAccess:
    """One Deployment through the app's client, as ``request`` names it: read it, patch it."""

    def __init__(
        self, api: client.ApiClient, ctx: Context, request: ApiRequest, namespace: str, name: str
    ) -> None:
        self.apps, self.core = client.AppsV1Api(api), client.CoreV1Api(api)
        self.ctx, self.request = ctx, request
        self.where = request.target
        self.namespace, self.name = namespace, name

    async def read_deployment(self, *, record: bool = True) -> Any:
        return await send(
            self.ctx,
            self.request,
            lambda timeout: self.apps.read_namespaced_deployment(
                self.name, self.namespace, _request_timeout=timeout
            ),
            record=record,
        )

    async def patch(self, body: Any) -> None:
        """A merge patch (a dict) or a JSON Patch (a list of operations)."""
        await send_patch(
            self.ctx,
            self.request.with_body(body),
            self.apps.patch_namespaced_deployment,
            self.name,
            self.namespace,
        )
