"""A small kustomize renderer for the features deploy/ uses, so the manifests can be tested
on machines without kustomize or kubectl (Debian packages neither).

Supported, with kustomize's semantics: ``resources`` (files and directories), ``namespace``
(including RoleBinding subjects that name a ServiceAccount of the build),
``configMapGenerator`` (``files``, ``literals``, ``options.disableNameSuffixHash: true``,
``options.labels``/``annotations``), ``images``, ``replicas`` and ``patches`` holding JSON
patches (RFC 6902) with a ``target``. Anything else raises ``Unsupported``: a test then
fails loudly instead of rendering something kustomize would not. When kubectl is installed
a test compares this renderer's output with ``kubectl kustomize``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

Resource = dict[str, Any]

_FILENAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_KEYS = {"apiVersion", "kind", "resources", "namespace", "configMapGenerator", "images",
         "replicas", "patches"}
_CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                   "PersistentVolume", "StorageClass", "PriorityClass", "IngressClass",
                   "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
                   "APIService", "Node"}
_WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


class Unsupported(Exception):
    """The kustomization uses a feature this renderer does not implement."""


def render(directory: Path) -> list[Resource]:
    """Build the kustomization in ``directory`` like ``kustomize build`` would."""
    kfile = next((directory / n for n in _FILENAMES if (directory / n).is_file()), None)
    if kfile is None:
        raise FileNotFoundError(f"no kustomization file in {directory}")
    spec = yaml.safe_load(kfile.read_text(encoding="utf-8")) or {}
    unknown = sorted(set(spec) - _KEYS)
    if unknown:
        raise Unsupported(f"{kfile}: keys not supported by the test renderer: {unknown}")
    resources: list[Resource] = []
    for entry in spec.get("resources", []):
        resources.extend(_load_resource(directory, entry))
    for generator in spec.get("configMapGenerator", []):
        resources.append(_config_map(directory, generator))
    for patch in spec.get("patches", []):
        _apply_patch(directory, patch, resources)
    if "namespace" in spec:
        _set_namespace(resources, spec["namespace"])
    for image in spec.get("images", []):
        _set_image(resources, image)
    for replica in spec.get("replicas", []):
        _set_replicas(resources, replica)
    _check_unique(resources)
    return resources


def _inside(root: Path, path: Path) -> Path:
    """kustomize's load restriction: nothing outside the kustomization's directory tree."""
    resolved = path.resolve()
    if resolved != root.resolve() and root.resolve() not in resolved.parents:
        raise Unsupported(f"{path} is outside {root} (kustomize refuses such files)")
    return resolved


def _load_resource(directory: Path, entry: str) -> list[Resource]:
    path = (directory / entry)
    if path.is_dir():
        return render(path.resolve())
    text = _inside(directory, path).read_text(encoding="utf-8")
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _config_map(directory: Path, generator: dict[str, Any]) -> Resource:
    known = {"name", "files", "literals", "options", "behavior", "namespace"}
    if set(generator) - known or generator.get("behavior", "create") != "create":
        raise Unsupported(f"configMapGenerator {generator.get('name')}: unsupported keys")
    options = generator.get("options", {})
    if not options.get("disableNameSuffixHash"):
        raise Unsupported("configMapGenerator without disableNameSuffixHash: the name hash "
                          "is not implemented by the test renderer")
    data: dict[str, str] = {}
    for item in generator.get("files", []):
        key, _, rel = item.partition("=") if "=" in item else (Path(item).name, "", item)
        data[key] = _inside(directory, directory / rel).read_text(encoding="utf-8")
    for item in generator.get("literals", []):
        key, _, value = item.partition("=")
        data[key] = value
    metadata: dict[str, Any] = {"name": generator["name"]}
    for field in ("labels", "annotations"):
        if options.get(field):
            metadata[field] = dict(options[field])
    if "namespace" in generator:
        metadata["namespace"] = generator["namespace"]
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}


def _matches(resource: Resource, target: dict[str, Any]) -> bool:
    group, _, version = resource["apiVersion"].rpartition("/")
    wanted = {"group": group, "version": version, "kind": resource["kind"],
              "name": resource["metadata"]["name"],
              "namespace": resource["metadata"].get("namespace", "")}
    extra = set(target) - set(wanted)
    if extra:
        raise Unsupported(f"patch target selectors not supported: {sorted(extra)}")
    return all(wanted[key] == value for key, value in target.items())


def _apply_patch(directory: Path, patch: dict[str, Any], resources: list[Resource]) -> None:
    if set(patch) - {"path", "patch", "target"} or "target" not in patch:
        raise Unsupported(f"patch {patch}: only JSON patches with a target are supported")
    text = (_inside(directory, directory / patch["path"]).read_text(encoding="utf-8")
            if "path" in patch else patch["patch"])
    operations = yaml.safe_load(text)
    if not isinstance(operations, list):
        raise Unsupported("strategic-merge patches are not supported by the test renderer")
    targets = [r for r in resources if _matches(r, patch["target"])]
    if not targets:
        raise ValueError(f"patch target {patch['target']} matches no resource")
    for resource in targets:
        for operation in operations:
            json_patch(resource, operation)


def json_patch(document: Any, operation: dict[str, Any]) -> None:
    """Apply one RFC 6902 ``add``/``replace``/``remove`` operation in place."""
    op, tokens = operation["op"], _pointer(operation["path"])
    if op not in ("add", "replace", "remove"):
        raise Unsupported(f"JSON patch op {op!r} is not supported by the test renderer")
    parent = document
    for token in tokens[:-1]:
        parent = parent[int(token)] if isinstance(parent, list) else parent[token]
    last = tokens[-1]
    value = copy.deepcopy(operation.get("value"))
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if op == "add":
            parent.insert(index, value)
        elif op == "replace":
            parent[index] = value
        else:
            del parent[index]
    elif op == "add":
        parent[last] = value
    elif last not in parent:
        raise KeyError(f"JSON patch {op} {operation['path']}: no such member")
    elif op == "replace":
        parent[last] = value
    else:
        del parent[last]


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise ValueError(f"JSON pointer {path!r} must start with /")
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _set_namespace(resources: list[Resource], namespace: str) -> None:
    accounts = {r["metadata"]["name"] for r in resources if r["kind"] == "ServiceAccount"}
    for resource in resources:
        if resource["kind"] not in _CLUSTER_SCOPED:
            resource["metadata"]["namespace"] = namespace
        if resource["kind"] in ("RoleBinding", "ClusterRoleBinding"):
            for subject in resource.get("subjects", []):
                if (subject.get("kind") == "ServiceAccount" and subject.get("name") in accounts
                        and subject.get("namespace", "default") == "default"):
                    subject["namespace"] = namespace


def _pod_containers(resource: Resource) -> list[dict[str, Any]]:
    if resource["kind"] not in _WORKLOADS:
        return []
    pod = resource["spec"]["template"]["spec"]
    return [*pod.get("initContainers", []), *pod.get("containers", [])]


def _set_image(resources: list[Resource], image: dict[str, Any]) -> None:
    for resource in resources:
        for container in _pod_containers(resource):
            current = container["image"]
            name = current.split("@", 1)[0]
            tag = ""
            if ":" in name.rsplit("/", 1)[-1]:
                name, _, tag = name.rpartition(":")
            if name != image["name"]:
                continue
            new = image.get("newName", name)
            if "digest" in image:
                container["image"] = f"{new}@{image['digest']}"
            else:
                new_tag = image.get("newTag", tag)
                container["image"] = f"{new}:{new_tag}" if new_tag else new


def _set_replicas(resources: list[Resource], replica: dict[str, Any]) -> None:
    for resource in resources:
        if resource["kind"] in _WORKLOADS and resource["metadata"]["name"] == replica["name"]:
            resource["spec"]["replicas"] = int(replica["count"])


def _check_unique(resources: list[Resource]) -> None:
    seen: set[tuple[str, str, str]] = set()
    for resource in resources:
        key = identity(resource)
        if key in seen:
            raise ValueError(f"duplicate resource {key} (kustomize refuses the build)")
        seen.add(key)


def identity(resource: Resource) -> tuple[str, str, str]:
    meta = resource["metadata"]
    return resource["kind"], meta.get("namespace", ""), meta["name"]
