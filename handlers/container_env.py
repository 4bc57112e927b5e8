"""What ``kubernetes.set_env`` reads and writes: a container's environment variables.

The names and values it accepts, one read of the Deployment (``Seen``: the container's
env and the rollout's status), and the JSON Patch that sets the named values in place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator

from handlers.kube import selector_string
from remediator import PermanentError

REVISION = "deployment.kubernetes.io/revision"
MAX_VALUE = 32_768
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def env_name(value: str) -> str:
    if len(value) > 256 or not _ENV_NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid environment variable name (letters, digits and '_', "
            "not starting with a digit, at most 256)"
        )
    return value


def env_value(value: str) -> str:
    if len(value) > MAX_VALUE:
        raise ValueError(f"an environment variable value of {len(value)} characters (at most {MAX_VALUE})")
    if match := _CONTROL.search(value):
        raise ValueError(f"{value[:80]!r} holds a control character ({match.group()!r}): refused")
    return value


EnvName = Annotated[str, AfterValidator(env_name)]
EnvValue = Annotated[str, AfterValidator(env_value)]


@dataclass(frozen=True)
class Var:
    """One entry of the container's env, as read."""

    name: str
    value: str  # "" when unset
    from_ref: bool  # set by valueFrom (a Secret, ConfigMap or field reference)


@dataclass(frozen=True)
class Seen:
    """What one read of the Deployment showed."""

    resource_version: str
    uid: str
    annotations: dict[str, str]
    labels: dict[str, str]
    generation: int
    revision: str
    selector: str
    container: str
    index: int  # of the container in spec.template.spec.containers
    env: tuple[Var, ...]
    replicas: int
    observed_generation: int
    updated: int
    ready: int
    current: int  # status.replicas

    @classmethod
    def of(cls, dep: Any, wanted: str | None, where: str) -> Seen:
        meta, spec, status = dep.metadata, dep.spec, dep.status
        containers = list(spec.template.spec.containers or [])
        index = _container_index([c.name for c in containers], wanted, where)
        env = tuple(
            Var(name=v.name, value=v.value or "", from_ref=v.value_from is not None)
            for v in containers[index].env or []
        )
        selector = spec.selector
        return cls(
            resource_version=str(meta.resource_version or ""),
            uid=str(meta.uid or ""),
            annotations=dict(meta.annotations or {}),
            labels=dict(meta.labels or {}),
            generation=int(meta.generation or 0),
            revision=str((meta.annotations or {}).get(REVISION) or ""),
            selector=selector_string(selector.match_labels, selector.match_expressions) if selector else "",
            container=containers[index].name,
            index=index,
            env=env,
            replicas=1 if spec.replicas is None else int(spec.replicas),
            observed_generation=int(getattr(status, "observed_generation", None) or 0),
            updated=int(getattr(status, "updated_replicas", None) or 0),
            ready=int(getattr(status, "ready_replicas", None) or 0),
            current=int(getattr(status, "replicas", None) or 0),
        )

    def current_values(self, names: list[str]) -> dict[str, str | None]:
        """The literal value of each name (``None``: not set)."""
        found: dict[str, str | None] = dict.fromkeys(names)
        for var in self.env:
            if var.name in found:
                found[var.name] = var.value
        return found

    def status(self) -> str:
        return (
            f"observedGeneration {self.observed_generation}/{self.generation}, replicas {self.replicas}, "
            f"updated {self.updated}, ready {self.ready}, status.replicas {self.current}"
        )

    def rolled_out(self) -> bool:
        return (
            self.observed_generation >= self.generation
            and self.updated == self.ready == self.current == self.replicas
        )


def _container_index(names: list[str], wanted: str | None, where: str) -> int:
    if wanted is not None:
        if wanted not in names:
            raise PermanentError(f"{where} has no container {wanted!r}; its containers: {', '.join(names)}")
        return names.index(wanted)
    if len(names) != 1:
        raise PermanentError(
            f"{where} has {len(names)} containers ({', '.join(names)}): name one with the `container` param"
        )
    return 0


def patch_ops(seen: Seen, env: dict[str, str]) -> list[dict[str, Any]]:
    """The JSON Patch: guard on the version read; set the named values in place, append new ones."""
    base = f"/spec/template/spec/containers/{seen.index}/env"
    ops: list[dict[str, Any]] = [
        {"op": "replace", "path": "/metadata/resourceVersion", "value": seen.resource_version}
    ]
    present = {var.name for var in seen.env}
    missing = [{"name": name, "value": value} for name, value in env.items() if name not in present]
    if not seen.env:
        return [*ops, {"op": "add", "path": base, "value": missing}]
    for i, var in enumerate(seen.env):
        if var.name in env and var.value != env[var.name]:
            ops.append({"op": "add", "path": f"{base}/{i}/value", "value": env[var.name]})
    ops.extend({"op": "add", "path": f"{base}/-", "value": var} for var in missing)
    return ops


def assignments(env: dict[str, str]) -> str:
    return ", ".join(f"{name}={value}" for name, value in env.items())
