"""A small kustomize renderer for the features deploy/ uses, so the manifests can be tested
on machines without kustomize or kubectl (Debian packages neither).

Supported, with kustomize's semantics: ``resources`` (files and directories), ``components``
(directories holding a ``kind: Component``), ``namespace`` (including RoleBinding subjects
that name a ServiceAccount of the build), ``configMapGenerator`` (``files``, ``literals``,
``options.disableNameSuffixHash: true``, ``options.labels``/``annotations``), ``labels``
(``pairs``, ``includeTemplates``; never selectors), ``images``, ``replicas``, ``patches``
holding JSON patches (RFC 6902) with a ``target``, ``replacements`` (inline, ``select`` by
kind/name/group/version/namespace/labelSelector, ``delimiter``/``index`` on the source,
``create`` on targets), ``transformers`` holding an inline builtin ``NamespaceTransformer``
with ``unsetOnly: true`` and ``setRoleBindingSubjects: allServiceAccounts``, a
``configMapGenerator`` entry with ``behavior: replace`` (an overlay's data for a base's
ConfigMap) and dropping ``config.kubernetes.io/local-config`` objects. Anything
else raises ``Unsupported``: a test then fails loudly instead of rendering something
kustomize would not. When kubectl is installed a test compares this renderer's output with
``kubectl kustomize``.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from remediator.rules.documents import load_all_yaml, load_yaml

Resource = dict[str, Any]

_FILENAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_KEYS = {
    "apiVersion",
    "kind",
    "resources",
    "components",
    "namespace",
    "configMapGenerator",
    "labels",
    "images",
    "replicas",
    "patches",
    "replacements",
    "transformers",
}
_LOCAL_CONFIG = "config.kubernetes.io/local-config"
_CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "IngressClass",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "APIService",
    "Node",
}
_WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
_FIELD_TOKEN = re.compile(r"\[[^\]]*\]|[^.\[]+")


class Unsupported(Exception):
    """The kustomization uses a feature this renderer does not implement."""


def render(directory: Path) -> list[Resource]:
    """Build the kustomization in ``directory`` like ``kustomize build`` would."""
    spec = _load_spec(directory)
    if spec.get("kind") == "Component":
        raise Unsupported(f"{directory} is a Component: only a kustomization's `components` can use it")
    resources = _build(directory, spec, [])
    # Dropped once the whole build is done: the components still read them (settings).
    return [r for r in resources if r["metadata"].get("annotations", {}).get(_LOCAL_CONFIG) != "true"]


def _load_spec(directory: Path) -> dict[str, Any]:
    kfile = next((directory / n for n in _FILENAMES if (directory / n).is_file()), None)
    if kfile is None:
        raise FileNotFoundError(f"no kustomization file in {directory}")
    spec: dict[str, Any] = load_yaml(kfile.read_bytes(), str(kfile)) or {}
    unknown = sorted(set(spec) - _KEYS)
    if unknown:
        raise Unsupported(f"{kfile}: keys not supported by the test renderer: {unknown}")
    return spec


def _build(directory: Path, spec: dict[str, Any], resources: list[Resource]) -> list[Resource]:
    """kustomize's order: resources, components, generators, then the transformers."""
    resources = list(resources)
    for entry in spec.get("resources", []):
        resources.extend(_load_resource(directory, entry))
    for entry in spec.get("components", []):
        component = (directory / entry).resolve()
        component_spec = _load_spec(component)
        if component_spec.get("kind") != "Component":
            raise ValueError(f"{component} is listed in components but is not a Component")
        resources = _build(component, component_spec, resources)
    for generator in spec.get("configMapGenerator", []):
        if generator.get("behavior") == "replace":
            _replace_config_map(directory, generator, resources)
        else:
            resources.append(_config_map(directory, generator))
    for patch in spec.get("patches", []):
        _apply_patch(directory, patch, resources)
    if "namespace" in spec:
        _set_namespace(resources, spec["namespace"])
    for transformer in spec.get("transformers", []):
        _namespace_transformer(transformer, resources)
    for labels in spec.get("labels", []):
        _set_labels(resources, labels)
    for image in spec.get("images", []):
        _set_image(resources, image)
    for replica in spec.get("replicas", []):
        _set_replicas(resources, replica)
    for replacement in spec.get("replacements", []):
        _replace(resources, replacement)
    _check_unique(resources)
    return resources


def _inside(root: Path, path: Path) -> Path:
    """kustomize's load restriction: nothing outside the kustomization's directory tree."""
    resolved = path.resolve()
    if resolved != root.resolve() and root.resolve() not in resolved.parents:
        raise Unsupported(f"{path} is outside {root} (kustomize refuses such files)")
    return resolved


def _load_resource(directory: Path, entry: str) -> list[Resource]:
    path = directory / entry
    if path.is_dir():
        return render(path.resolve())
    text = _inside(directory, path).read_text(encoding="utf-8")
    return [doc for doc in load_all_yaml(text, str(path)) if doc]


def _config_map(directory: Path, generator: dict[str, Any]) -> Resource:
    known = {"name", "files", "literals", "options", "behavior", "namespace"}
    if set(generator) - known or generator.get("behavior", "create") != "create":
        raise Unsupported(f"configMapGenerator {generator.get('name')}: unsupported keys")
    options = generator.get("options", {})
    if not options.get("disableNameSuffixHash"):
        raise Unsupported(
            "configMapGenerator without disableNameSuffixHash: the name hash "
            "is not implemented by the test renderer"
        )
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


def _replace_config_map(directory: Path, generator: dict[str, Any], resources: list[Resource]) -> None:
    """``behavior: replace``: the base's ConfigMap of that name keeps its metadata (name,
    labels) and gets this generator's data, as kustomize does."""
    if set(generator) - {"name", "files", "literals", "behavior"}:
        raise Unsupported(f"configMapGenerator {generator.get('name')} (replace): unsupported keys")
    found = [r for r in resources if r["kind"] == "ConfigMap" and r["metadata"]["name"] == generator["name"]]
    if len(found) != 1:
        raise ValueError(f"configMapGenerator {generator['name']}: behavior replace needs one such ConfigMap")
    options = {"disableNameSuffixHash": True}
    found[0]["data"] = _config_map(directory, {**generator, "behavior": "create", "options": options})["data"]


def _namespace_transformer(config: Any, resources: list[Resource]) -> None:
    """The builtin NamespaceTransformer, inline, as the overlays use it: set the namespace of
    the objects that have none, and of the ServiceAccount subjects that have none."""
    spec = load_yaml(config, "inline NamespaceTransformer") if isinstance(config, str) else None
    expected = {"apiVersion", "kind", "metadata", "unsetOnly", "setRoleBindingSubjects"}
    if (
        not isinstance(spec, dict)
        or spec.get("kind") != "NamespaceTransformer"
        or set(spec) != expected
        or spec["unsetOnly"] is not True
        or spec["setRoleBindingSubjects"] != "allServiceAccounts"
    ):
        raise Unsupported(
            "transformers: only an inline NamespaceTransformer with unsetOnly: true and "
            "setRoleBindingSubjects: allServiceAccounts is supported by the test renderer"
        )
    namespace = spec["metadata"]["namespace"]
    for resource in resources:
        if resource["kind"] not in _CLUSTER_SCOPED and not resource["metadata"].get("namespace"):
            resource["metadata"]["namespace"] = namespace
        if resource["kind"] in ("RoleBinding", "ClusterRoleBinding"):
            for subject in resource.get("subjects", []):
                if subject.get("kind") == "ServiceAccount" and not subject.get("namespace"):
                    subject["namespace"] = namespace


def _matches(resource: Resource, target: dict[str, Any]) -> bool:
    group, _, version = resource["apiVersion"].rpartition("/")
    wanted = {
        "group": group,
        "version": version,
        "kind": resource["kind"],
        "name": resource["metadata"]["name"],
        "namespace": resource["metadata"].get("namespace", ""),
    }
    extra = set(target) - set(wanted)
    if extra:
        raise Unsupported(f"patch target selectors not supported: {sorted(extra)}")
    return all(wanted[key] == value for key, value in target.items())


def _apply_patch(directory: Path, patch: dict[str, Any], resources: list[Resource]) -> None:
    if set(patch) - {"path", "patch", "target"} or "target" not in patch:
        raise Unsupported(f"patch {patch}: only JSON patches with a target are supported")
    text = (
        _inside(directory, directory / patch["path"]).read_text(encoding="utf-8")
        if "path" in patch
        else patch["patch"]
    )
    operations = load_yaml(text, str(patch.get("path", "inline patch")))
    if not isinstance(operations, list):
        raise Unsupported("strategic-merge patches are not supported by the test renderer")
    targets = [r for r in resources if _matches(r, patch["target"])]
    if not targets:
        raise ValueError(f"patch target {patch['target']} matches no resource")
    for resource in targets:
        for operation in operations:
            json_patch(resource, operation)


def json_patch(document: Any, operation: dict[str, Any]) -> None:
    """Apply one RFC 6902 ``add``/``replace``/``remove``/``test`` operation in place."""
    op, tokens = operation["op"], _pointer(operation["path"])
    if op not in ("add", "replace", "remove", "test"):
        raise Unsupported(f"JSON patch op {op!r} is not supported by the test renderer")
    parent = document
    for token in tokens[:-1]:
        parent = parent[int(token)] if isinstance(parent, list) else parent[token]
    last = tokens[-1]
    if op == "test":
        actual = parent[int(last)] if isinstance(parent, list) else parent.get(last)
        if actual != operation["value"]:
            raise ValueError(f"JSON patch test {operation['path']}: {actual!r} is not {operation['value']!r}")
        return
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
                if (
                    subject.get("kind") == "ServiceAccount"
                    and subject.get("name") in accounts
                    and subject.get("namespace", "default") == "default"
                ):
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


def _set_labels(resources: list[Resource], entry: dict[str, Any]) -> None:
    if set(entry) - {"pairs", "includeSelectors", "includeTemplates"} or entry.get("includeSelectors"):
        raise Unsupported(f"labels {entry}: only pairs and includeTemplates are supported")
    pairs = {str(k): str(v) for k, v in entry["pairs"].items()}
    for resource in resources:
        resource["metadata"]["labels"] = {**(resource["metadata"].get("labels") or {}), **pairs}
        if entry.get("includeTemplates") and resource["kind"] in _WORKLOADS:
            templates = [resource["spec"]["template"]]
            if resource["kind"] == "StatefulSet":
                templates += resource["spec"].get("volumeClaimTemplates", [])
            for template in templates:
                metadata = template.setdefault("metadata", {})
                metadata["labels"] = {**(metadata.get("labels") or {}), **pairs}


def _selected(resource: Resource, select: dict[str, Any]) -> bool:
    known = {"kind", "name", "group", "version", "namespace", "labelSelector"}
    if set(select) - known:
        raise Unsupported(f"selector keys not supported: {sorted(set(select) - known)}")
    group, _, version = resource["apiVersion"].rpartition("/")
    meta = resource["metadata"]
    have = {
        "kind": resource["kind"],
        "name": meta["name"],
        "group": group,
        "version": version,
        "namespace": meta.get("namespace", ""),
    }
    if any(have[key] != value for key, value in select.items() if key != "labelSelector"):
        return False
    labels = meta.get("labels") or {}
    for term in filter(None, select.get("labelSelector", "").split(",")):
        key, sep, value = term.partition("=")
        if not sep or key.endswith("!"):
            raise Unsupported(f"labelSelector {term!r}: only key=value terms are supported")
        if labels.get(key.strip()) != value.strip():
            return False
    return True


def _field_path(path: str) -> list[str]:
    tokens = _FIELD_TOKEN.findall(path)
    if ".".join(tokens) != path:
        raise Unsupported(f"fieldPath {path!r} is not supported by the test renderer")
    return tokens


def _step(node: Any, token: str, create: bool) -> Any:
    """One fieldPath step: a map key, ``[dotted.key]``, a list index or ``[field=value]``."""
    if isinstance(node, list):
        if token.isdigit():
            return node[int(token)]
        field, sep, value = token.strip("[]").partition("=")
        found = [item for item in node if sep and item.get(field) == value]
        if len(found) != 1:
            raise ValueError(f"fieldPath step {token}: {len(found)} list items match")
        return found[0]
    key = token[1:-1] if token.startswith("[") else token
    if key not in node:
        if not create:
            raise ValueError(f"fieldPath step {token}: no such field")
        node[key] = {}
    return node[key]


def _replace(resources: list[Resource], replacement: dict[str, Any]) -> None:
    if set(replacement) != {"source", "targets"}:
        raise Unsupported(f"replacement {replacement}: only inline source and targets")
    source = dict(replacement["source"])
    path = _field_path(source.pop("fieldPath", "metadata.name"))
    options = source.pop("options", {})
    if set(options) - {"delimiter", "index"}:
        raise Unsupported(f"replacement source options {options}")
    origins = [r for r in resources if _selected(r, source)]
    if len(origins) != 1:
        raise ValueError(f"replacement source {source} must match exactly one resource, not {len(origins)}")
    value: Any = origins[0]
    for token in path:
        value = _step(value, token, create=False)
    if "delimiter" in options:
        parts = str(value).split(options["delimiter"])
        index = int(options.get("index", 0))
        if not 0 <= index < len(parts):
            raise ValueError(f"options.index {index} is out of bounds for value {value}")
        value = parts[index]
    for target in replacement["targets"]:
        if set(target) - {"select", "fieldPaths", "options"} or set(target.get("options", {})) - {"create"}:
            raise Unsupported(
                f"replacement target {target}: only select, fieldPaths and options.create are supported"
            )
        create = bool(target.get("options", {}).get("create"))
        chosen = [r for r in resources if _selected(r, target["select"])]
        if not chosen:
            raise ValueError(f"replacement target {target['select']} matches no resource")
        for resource in chosen:
            for field_path in target["fieldPaths"]:
                *parents, last = _field_path(field_path)
                node: Any = resource
                for token in parents:
                    node = _step(node, token, create)
                if isinstance(node, list):
                    node[int(last)] = copy.deepcopy(value)
                else:
                    key = last[1:-1] if last.startswith("[") else last
                    if key not in node and not create:
                        raise ValueError(f"fieldPath {field_path}: no such field")
                    node[key] = copy.deepcopy(value)


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
