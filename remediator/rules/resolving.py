"""A rule's ``resolve:`` compiled: the pod it names, rendered per alert. Pure.

The owner itself is found by the pipeline's Resolve stage (``worker/resolve.py``), with the
resolver the ``handlers`` package registers (``handling/owners.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from remediator.errors import TemplateError
from remediator.handling.names import dns1123_label, dns1123_subdomain
from remediator.handling.owners import OwnerResolver
from remediator.rules.schema import ResolveSpec
from remediator.rules.templates import compile_value, render_value


@dataclass(frozen=True)
class PodRef:
    """The pod an alert names."""

    namespace: str
    pod: str

    def __str__(self) -> str:
        return f"pod {self.namespace}/{self.pod}"


@dataclass(frozen=True)
class ResolveTemplate:
    """``resolve:`` with its templates compiled, and the resolver the registry had at load."""

    pod: Any  # a jinja2 Template, or the name itself
    namespace: Any
    resolver: OwnerResolver | None

    @classmethod
    def compile(cls, spec: ResolveSpec, resolver: OwnerResolver | None) -> ResolveTemplate:
        """Raises TemplateError (a syntax error) or ValueError (a fixed name that is not one)."""
        pod, namespace = compile_value(spec.pod), compile_value(spec.namespace)
        if isinstance(pod, str):
            dns1123_subdomain(pod.strip())
        if isinstance(namespace, str):
            dns1123_label(namespace.strip())
        return cls(pod=pod, namespace=namespace, resolver=resolver)

    def render(self, context: Mapping[str, Any]) -> PodRef:
        """The pod for one alert; raises TemplateError when a label is missing or a rendered
        value is not a Kubernetes name (labels are untrusted)."""
        pod = str(render_value(self.pod, context)).strip()
        namespace = str(render_value(self.namespace, context)).strip()
        try:
            return PodRef(namespace=dns1123_label(namespace), pod=dns1123_subdomain(pod))
        except ValueError as exc:
            raise TemplateError(f"resolve: {exc}") from exc
