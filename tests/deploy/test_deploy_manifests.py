"""deploy/: the kustomize base and the torghut overlay, rendered with kustomize semantics
(tests/support/kustomize.py; cross-checked with `kubectl kustomize` where installed) and
validated against the Kubernetes JSON schemas (kubernetes-validate)."""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
import tomllib
import urllib.request
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import redis
import yaml
from aiohttp import web

from remediator.api import health
from remediator.handling.registry import default_registry, load_plugins
from remediator.rules.matchers import parse_matcher
from remediator.rules.ruleset import RulesFile, load_rules
from remediator.rules.templates import compile_value
from remediator.settings import Settings, known_variables
from tests.support.kustomize import Resource, Unsupported, identity, json_patch, render
from tests.support.procs import (
    PYTHON,
    ROOT,
    free_port,
    python_env,
    require_binary,
    stop_process,
    wait_port,
)

BASE = ROOT / "deploy" / "base"
OVERLAY = ROOT / "deploy" / "overlays" / "torghut"
PROMETHEUS = ROOT / "deploy" / "prometheus"
COMPONENTS = ROOT / "deploy" / "components"
RECOMMENDED_LABELS = ("name", "instance", "version", "component", "part-of", "managed-by")
KUBERNETES_VERSIONS = ("1.29.0", "1.33.0")
CRD_KINDS = {"PrometheusRule", "ServiceMonitor"}  # validated in test_overlays.py


def by_kind(resources: list[Resource], kind: str) -> Resource:
    found = [r for r in resources if r["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def overlay() -> list[Resource]:
    return render(OVERLAY)


@pytest.fixture(scope="module")
def base() -> list[Resource]:
    return render(BASE)


@pytest.fixture(scope="module")
def deployment(overlay: list[Resource]) -> Resource:
    return by_kind(overlay, "Deployment")


@pytest.fixture(scope="module")
def container(deployment: Resource) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def settings_of(overlay_dir: Path = OVERLAY) -> dict[str, Any]:
    document = yaml.safe_load((overlay_dir / "settings.yaml").read_text(encoding="utf-8"))
    assert document["kind"] == "DeploySettings"
    assert document["metadata"]["annotations"]["config.kubernetes.io/local-config"] == "true"
    return dict(document["spec"])


def copy_overlay(
    directory: Path,
    *,
    redis_component: bool = False,
    settings: dict[str, Any] | None = None,
    tag: str | None = None,
) -> Path:
    """The torghut overlay in ``directory``, as a user copies it: optionally with the Redis
    component switched on (the commented line uncommented) and other settings."""
    directory.mkdir(parents=True, exist_ok=True)
    text = (OVERLAY / "kustomization.yaml").read_text(encoding="utf-8")
    if redis_component:
        line = "  # - ../../components/redis\n"
        assert line in text, "the overlay should show how to switch the Redis component on"
        text = text.replace(line, line.replace("# ", ""))
    spec = yaml.safe_load(text)
    for key in ("resources", "components"):
        spec[key] = [
            os.path.relpath((OVERLAY / entry).resolve(), directory) if entry.startswith("../") else entry
            for entry in spec[key]
        ]
    if tag is not None:
        spec["images"][0]["newTag"] = tag
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    for name in ("deployment-env.yaml", "rules.yaml", "rbac.yaml", "prometheusrule.yaml"):
        shutil.copy(OVERLAY / name, directory)
    document = yaml.safe_load((OVERLAY / "settings.yaml").read_text(encoding="utf-8"))
    if settings is not None:
        document["spec"] = settings
    (directory / "settings.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
    return directory


@pytest.fixture(scope="module")
def redis_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_overlay(tmp_path_factory.mktemp("with-redis"), redis_component=True)


@pytest.fixture(scope="module")
def with_redis(redis_dir: Path) -> list[Resource]:
    return render(redis_dir)


def named(resources: list[Resource], kind: str, name: str) -> Resource:
    (found,) = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    return found


def remediator_container(resources: list[Resource]) -> dict[str, Any]:
    deployment = named(resources, "Deployment", "remediator")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def assert_kubectl_agrees(directory: Path) -> None:
    kubectl = require_binary("kubectl")  # scripts/system-deps.sh installs it
    out = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    theirs = {identity(r): r for r in yaml.safe_load_all(out) if r}
    ours = {identity(r): r for r in render(directory)}
    assert ours == theirs


# ---- schemas -----------------------------------------------------------------------------
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("directory", [BASE, OVERLAY], ids=["base", "torghut"])
def test_every_manifest_validates_against_the_kubernetes_schema(directory: Path, version: str) -> None:
    resources = render(directory)
    validated = set()
    for resource in resources:
        if resource["kind"] in CRD_KINDS:
            continue  # no schema in kubernetes-validate; checked by the tests below
        kubernetes_validate.validate(resource, version, strict=True)
        validated.add(resource["kind"])
    expected = {
        "Deployment",
        "Service",
        "ServiceAccount",
        "ConfigMap",
        "PodDisruptionBudget",
        "NetworkPolicy",
    }
    if directory != BASE:  # the base has no Role: each overlay makes one per namespace (rbac.yaml)
        expected |= {"Role", "RoleBinding"}
    assert validated >= expected


def test_the_schema_check_catches_a_typo(deployment: Resource) -> None:
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


@pytest.mark.parametrize(
    "directory", [BASE, OVERLAY, ROOT / "deploy" / "prometheus"], ids=["base", "torghut", "prometheus"]
)
def test_renderer_agrees_with_kubectl_kustomize(directory: Path) -> None:
    assert_kubectl_agrees(directory)


def test_renderer_agrees_with_kubectl_on_the_redis_component(redis_dir: Path) -> None:
    assert_kubectl_agrees(redis_dir)


def test_overlay_puts_everything_in_torghut(overlay: list[Resource]) -> None:
    assert {r["metadata"].get("namespace") for r in overlay} == {"torghut"}
    kinds = sorted(r["kind"] for r in overlay)
    assert kinds == sorted(
        [
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "ConfigMap",
            "Service",
            "Deployment",
            "PodDisruptionBudget",
            "NetworkPolicy",
            "PrometheusRule",
            "PrometheusRule",
            "ServiceMonitor",
        ]
    )
    rules = sorted(r["metadata"]["name"] for r in overlay if r["kind"] == "PrometheusRule")
    assert rules == ["remediator", "torghut-alerts"], "remediator's own alerts apart from torghut's"


# ---- least privilege ---------------------------------------------------------------------
def test_role_grants_exactly_what_the_handlers_call(overlay: list[Resource]) -> None:
    role = by_kind(overlay, "Role")
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert granted == {
        ("flink.apache.org", "flinkdeployments", "get"),
        ("flink.apache.org", "flinkdeployments", "patch"),
        ("apps", "deployments", "get"),
        ("apps", "deployments", "patch"),
        ("apps", "statefulsets", "get"),
        ("apps", "statefulsets", "patch"),
        ("apps", "daemonsets", "get"),
        ("apps", "daemonsets", "patch"),
        ("apps", "deployments/scale", "patch"),
        ("apps", "statefulsets/scale", "patch"),
        ("apps", "replicasets", "get"),
        ("apps", "replicasets", "list"),
        ("", "pods", "get"),
        ("", "pods", "list"),
        ("", "pods", "delete"),
        ("autoscaling", "horizontalpodautoscalers", "list"),
        ("batch", "jobs", "create"),
        ("batch", "jobs", "get"),
        ("", "pods/log", "get"),
        ("", "events", "list"),  # a rule's kubernetes.events context
    }
    assert not any("resourceNames" in rule or "nonResourceURLs" in rule for rule in role["rules"])
    assert not [r for r in overlay if r["kind"] in ("ClusterRole", "ClusterRoleBinding")]


def test_rolebinding_binds_the_role_to_the_service_account(overlay: list[Resource]) -> None:
    binding, role = by_kind(overlay, "RoleBinding"), by_kind(overlay, "Role")
    account = by_kind(overlay, "ServiceAccount")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": "torghut"}
    ]


# ---- the Deployment ------------------------------------------------------------------------
def test_deployment_runs_two_hardened_replicas(deployment: Resource, container: dict[str, Any]) -> None:
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["enableServiceLinks"] is False, "REMEDIATOR_PORT=tcp://... would break settings"
    assert pod["topologySpreadConstraints"] or pod["affinity"]["podAntiAffinity"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert container["image"] == f"ghcr.io/torghut/remediator:{version}"  # `make deploy-sync` writes the tag
    assert container["args"] == ["serve"]


def test_pod_uid_is_the_images_user(deployment: Resource) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    users = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER ")]
    uid = int(users[-1].split(":")[0])
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == uid


def test_probes_hit_routes_the_service_serves(container: dict[str, Any]) -> None:
    app = web.Application()
    health.add_routes(app)
    served = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        check = container[probe]["httpGet"]
        assert ("GET", check["path"]) in served
        assert check["port"] in [p["name"] for p in container["ports"]]


def test_rules_come_from_the_configmap_as_a_directory(
    overlay: list[Resource], deployment: Resource, container: dict[str, Any]
) -> None:
    env = {e["name"]: e for e in container["env"]}
    rules_path = Path(env["REMEDIATOR_RULES"]["value"])
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    ((name, mount),) = [(n, m) for n, m in mounts.items() if "configMap" in volumes[n]]
    assert "subPath" not in mount, "a subPath mount never sees ConfigMap updates"
    assert Path(mount["mountPath"]) == rules_path.parent
    config_map = by_kind(overlay, "ConfigMap")
    assert volumes[name]["configMap"]["name"] == config_map["metadata"]["name"]
    assert config_map["data"][rules_path.name] == (OVERLAY / "rules.yaml").read_text("utf-8")
    assert mounts["tmp"]["mountPath"] == "/tmp" and "emptyDir" in volumes["tmp"]


def test_secrets_come_from_the_secret(container: dict[str, Any]) -> None:
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert {name: (ref["name"], ref["key"], ref.get("optional", False)) for name, ref in refs.items()} == {
        "REMEDIATOR_WEBHOOK_TOKEN": ("remediator", "webhook-token", False),
        "REMEDIATOR_REDIS_URL": ("remediator", "redis-url", False),
        "REMEDIATOR_ADMIN_TOKEN": ("remediator", "admin-token", True),
        "REMEDIATOR_SLACK_BOT_TOKEN": ("remediator", "slack-bot-token", True),
        "REMEDIATOR_SLACK_WEBHOOK_URL": ("remediator", "slack-webhook-url", True),
        "REMEDIATOR_CLICKHOUSE_PASSWORD": ("remediator", "clickhouse-password", True),
    }
    plain = [e for e in container["env"] if "value" in e]
    assert not [e for e in plain if any(w in e["name"] for w in ("TOKEN", "PASSWORD", "URL"))]


def kubelet_env(container: dict[str, Any], secret: dict[str, str]) -> dict[str, str]:
    """The environment the kubelet gives the container with Secret ``remediator`` = secret."""
    env = {}
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        ref = item["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "remediator"
        if ref["key"] in secret:
            env[item["name"]] = secret[ref["key"]]
        else:
            assert ref.get("optional"), f"the pod cannot start without key {ref['key']}"
    return env


def test_slack_webhook_url_from_the_secret_reaches_the_settings(
    container: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("REMEDIATOR_")]:
        monkeypatch.delenv(name)
    url = "https://hooks.slack.com/services/T000/B000/XXXX"
    secret = {"webhook-token": "t", "redis-url": "redis://redis:6379/0", "slack-webhook-url": url}
    for name, value in kubelet_env(container, secret).items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.slack_webhook_url is not None
    assert settings.slack_webhook_url.get_secret_value() == url
    # Without the key the pod still starts (optional), and no webhook is configured.
    monkeypatch.delenv("REMEDIATOR_SLACK_WEBHOOK_URL")
    assert "REMEDIATOR_SLACK_WEBHOOK_URL" not in kubelet_env(
        container, {"webhook-token": "t", "redis-url": "redis://redis:6379/0"}
    )
    assert Settings().slack_webhook_url is None


def test_every_environment_variable_is_a_setting(container: dict[str, Any]) -> None:
    known = known_variables()  # every setting, and each secret's _FILE variant
    for item in container["env"]:
        name = item["name"]
        assert name.startswith("REMEDIATOR_"), name
        assert name in known, f"{name} is not a setting of remediator.settings.Settings"


def test_environment_of_the_pod_gives_valid_settings(
    container: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The env the kubelet would set (secrets filled in) loads into Settings."""
    for name in [n for n in os.environ if n.startswith("REMEDIATOR_")]:
        monkeypatch.delenv(name)
    for item in container["env"]:
        monkeypatch.setenv(item["name"], item.get("value", "redis://redis:6379/0"))
    settings = Settings()
    assert settings.port == 8080 and settings.rules == Path("/etc/remediator/rules.yaml")
    assert settings.redis_url is not None and settings.webhook_auth_configured()
    assert settings.slack_channel == "#torghut-ops"


# ---- Service, PDB, NetworkPolicy, ServiceMonitor ---------------------------------------------
def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def test_service_pdb_and_policy_select_the_pods(overlay: list[Resource], deployment: Resource) -> None:
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert _selects(deployment["spec"]["selector"]["matchLabels"], pod_labels)
    service = by_kind(overlay, "Service")
    assert _selects(service["spec"]["selector"], pod_labels)
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]
    pdb = by_kind(overlay, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert _selects(pdb["spec"]["selector"]["matchLabels"], pod_labels)
    policy = by_kind(overlay, "NetworkPolicy")
    assert _selects(policy["spec"]["podSelector"]["matchLabels"], pod_labels)
    monitor = by_kind(overlay, "ServiceMonitor")
    assert _selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["http"]
    assert service["metadata"]["name"] == "remediator", "RemediatorDown expects job=remediator"


def test_network_policy_allows_only_what_is_needed(overlay: list[Resource]) -> None:
    policy = by_kind(overlay, "NetworkPolicy")["spec"]
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
    (ingress,) = policy["ingress"]
    assert ingress["ports"] == [{"port": 8080, "protocol": "TCP"}]
    (source,) = ingress["from"]
    assert source["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"}
    allowed = {(p["port"], p["protocol"]) for rule in policy["egress"] for p in rule["ports"]}
    assert allowed == {
        (53, "UDP"),
        (53, "TCP"),
        (6379, "TCP"),
        (9000, "TCP"),
        (443, "TCP"),
        (6443, "TCP"),
        (80, "TCP"),
    }
    # An egress rule without `to` allows every destination.
    assert all(rule["to"] for rule in policy["egress"])


# ---- cluster settings from the overlay (deploy/components/settings) -------------------------
def policy_settings(resources: list[Resource]) -> dict[str, Any]:
    """What the NetworkPolicy and the Prometheus objects say, in settings.yaml's terms."""
    policy = named(resources, "NetworkPolicy", "remediator")["spec"]
    (ingress_from,) = policy["ingress"][0]["from"]
    dns = policy["egress"][0]["to"][0]
    by_ports = {tuple(sorted(p["port"] for p in rule["ports"])): rule for rule in policy["egress"]}
    (api,) = by_ports[(443, 6443)]["to"]
    (https,) = by_ports[(443,)]["to"]
    (http_peer,) = policy["egress"][5]["to"]
    (http_namespaces,) = http_peer["namespaceSelector"]["matchExpressions"]
    releases = {r["kind"]: r["metadata"]["labels"]["release"] for r in resources if r["kind"] in CRD_KINDS}
    assert releases.keys() == CRD_KINDS
    (release,) = {r["metadata"]["labels"]["release"] for r in resources if r["kind"] in CRD_KINDS}
    return {
        "namespaces": sorted(r["metadata"]["namespace"] for r in resources if r["kind"] == "Role"),
        "prometheusRelease": release,
        "monitoringNamespace": ingress_from["namespaceSelector"]["matchLabels"][
            "kubernetes.io/metadata.name"
        ],
        "dns": {
            "namespace": dns["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
            "podLabels": dns["podSelector"]["matchLabels"],
        },
        "egress": {
            "kubernetesApiCidr": api["ipBlock"]["cidr"],
            "httpsCidr": https["ipBlock"]["cidr"],
            "http": {"namespaces": http_namespaces["values"], "ports": policy["egress"][5]["ports"]},
        },
    }


def test_torghut_settings_land_in_the_objects(overlay: list[Resource]) -> None:
    assert policy_settings(overlay) == settings_of(OVERLAY)
    assert not [r for r in overlay if r["kind"] == "DeploySettings"], "local-config is applied"


OTHER_SETTINGS = {
    "namespaces": ["torghut"],  # rbac.yaml is copied as it is (`make deploy-sync` would rewrite it)
    "prometheusRelease": "prom-main",
    "monitoringNamespace": "observability",
    "dns": {
        "namespace": "openshift-dns",
        "podLabels": {"dns.operator.openshift.io/daemonset-dns": "default"},
    },
    "egress": {
        "kubernetesApiCidr": "10.0.0.1/32",
        "httpsCidr": "192.0.2.0/24",
        "http": {"namespaces": ["torghut", "jangar"], "ports": [{"port": 3000, "protocol": "TCP"}]},
    },
}


def test_other_settings_reach_every_object_they_name(tmp_path: Path) -> None:
    """One release name in settings.yaml labels both the ServiceMonitor and the
    PrometheusRule; the NetworkPolicy's namespaces, DNS pods and CIDRs follow the file."""
    directory = copy_overlay(tmp_path / "other", settings=OTHER_SETTINGS)
    resources = render(directory)
    assert policy_settings(resources) == OTHER_SETTINGS
    dumped = yaml.safe_dump_all(resources)
    for default in (
        "kube-prometheus-stack",
        "0.0.0.0/0",
        "kube-dns",
        "kubernetes.io/metadata.name: monitoring",
        "set-egress",
    ):
        assert default not in dumped, default
    assert_kubectl_agrees(directory)


def test_a_setting_missing_from_the_overlay_fails_the_build(tmp_path: Path) -> None:
    settings = yaml.safe_load(yaml.safe_dump(OTHER_SETTINGS))
    del settings["egress"]["httpsCidr"]
    directory = copy_overlay(tmp_path / "incomplete", settings=settings)
    with pytest.raises(ValueError, match="httpsCidr"):
        render(directory)
    kubectl = require_binary("kubectl")
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0 and "httpsCidr" in result.stderr


def ip_blocks(resources: list[Resource]) -> list[str]:
    return [
        peer["ipBlock"]["cidr"]
        for r in resources
        if r["kind"] == "NetworkPolicy"
        for rule in r["spec"].get("egress", [])
        for peer in rule["to"]
        if "ipBlock" in peer
    ]


def test_no_world_egress_unless_the_overlay_says_so(base: list[Resource], overlay: list[Resource]) -> None:
    """The base opens nothing to the internet: its CIDRs are placeholders that the API server
    rejects, so applying it without settings fails instead of allowing 0.0.0.0/0."""
    assert "0.0.0.0/0" not in yaml.safe_dump_all(base)
    for cidr in ip_blocks(base):
        with pytest.raises(ValueError):  # noqa: PT011 - any refusal: the stdlib's wording is not ours
            ipaddress.ip_network(cidr)
    egress = settings_of(OVERLAY)["egress"]
    assert sorted(ip_blocks(overlay)) == sorted([egress["kubernetesApiCidr"], egress["httpsCidr"]])
    for cidr in ip_blocks(overlay):
        ipaddress.ip_network(cidr)


# ---- app.kubernetes.io labels ------------------------------------------------------------------
def _labelled(resources: list[Resource]) -> list[tuple[str, dict[str, str]]]:
    """Every object's labels and every pod template's labels."""
    found = []
    for resource in resources:
        name = f"{resource['kind']}/{resource['metadata']['name']}"
        found.append((name, resource["metadata"].get("labels") or {}))
        if "template" in resource.get("spec", {}):
            found.append((name + " pods", resource["spec"]["template"]["metadata"]["labels"]))
        for claim in resource.get("spec", {}).get("volumeClaimTemplates", []):
            found.append((f"{name} claim {claim['metadata']['name']}", claim["metadata"]["labels"]))
    return found


@pytest.mark.parametrize("which", ["torghut", "with-redis"])
def test_every_object_carries_the_recommended_labels(
    which: str, overlay: list[Resource], with_redis: list[Resource]
) -> None:
    resources = overlay if which == "torghut" else with_redis
    tag = remediator_container(resources)["image"].rsplit(":", 1)[1]
    for name, labels in _labelled(resources):
        # A StatefulSet's claim templates are immutable: no label that changes on upgrades.
        wanted = [k for k in RECOMMENDED_LABELS if k != "version" or " claim " not in name]
        missing = [key for key in wanted if not labels.get(f"app.kubernetes.io/{key}")]
        assert not missing, f"{name} lacks app.kubernetes.io/{missing}"
        if " claim " in name:
            assert "app.kubernetes.io/version" not in labels, name
            continue
        assert labels["app.kubernetes.io/instance"] == "remediator-torghut", name
        assert labels["app.kubernetes.io/part-of"] == "remediator", name
        assert labels["app.kubernetes.io/managed-by"] == "kustomize", name
        if labels["app.kubernetes.io/name"] == "remediator":
            assert labels["app.kubernetes.io/version"] == tag, name
        else:
            assert labels["app.kubernetes.io/name"] == "redis", name
            image = named(resources, "StatefulSet", "remediator-redis")["spec"]["template"]["spec"][
                "containers"
            ][0]["image"]
            assert image.startswith(f"redis:{labels['app.kubernetes.io/version']}-"), name


def test_version_label_is_the_image_tag_even_when_it_looks_like_a_number(tmp_path: Path) -> None:
    directory = copy_overlay(tmp_path / "tag", tag="1.0")
    out = subprocess.run(
        [require_binary("kubectl"), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    for resources in (render(directory), [r for r in yaml.safe_load_all(out) if r]):
        assert remediator_container(resources)["image"].endswith(":1.0")
        versions = {labels.get("app.kubernetes.io/version") for _, labels in _labelled(resources)}
        assert versions == {"1.0"}, "a label must be a string"


def test_base_version_label_is_the_packages_version(base: list[Resource]) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    prometheus = render(PROMETHEUS)
    assert {labels["app.kubernetes.io/version"] for _, labels in _labelled(base + prometheus)} == {
        project["version"]
    }


def test_renderer_refuses_labels_in_selectors(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        "labels: [{pairs: {a: b}, includeSelectors: true}]\n", encoding="utf-8"
    )
    with pytest.raises(Unsupported, match="labels"):
        render(tmp_path)


def test_selectors_hold_only_labels_that_never_change(with_redis: list[Resource]) -> None:
    """A Deployment's or StatefulSet's selector is immutable: it keeps the labels it had
    (name, plus part-of for Redis), never version or instance."""
    selectors = {
        f"{r['kind']}/{r['metadata']['name']}": (
            r["spec"].get("selector", {}).get("matchLabels")
            if r["kind"] != "Service"
            else r["spec"]["selector"]
        )
        for r in with_redis
        if r["kind"] in ("Deployment", "StatefulSet", "Service", "PodDisruptionBudget")
    }
    selectors.update(
        {
            f"NetworkPolicy/{r['metadata']['name']}": r["spec"]["podSelector"]["matchLabels"]
            for r in with_redis
            if r["kind"] == "NetworkPolicy"
        }
    )
    remediator = {"app.kubernetes.io/name": "remediator"}
    redis_pods = {"app.kubernetes.io/name": "redis", "app.kubernetes.io/part-of": "remediator"}
    assert selectors == {
        "Deployment/remediator": remediator,
        "Service/remediator": remediator,
        "PodDisruptionBudget/remediator": remediator,
        "NetworkPolicy/remediator": remediator,
        "StatefulSet/remediator-redis": redis_pods,
        "Service/remediator-redis": redis_pods,
        "NetworkPolicy/remediator-redis": redis_pods,
    }
    for resource in with_redis:
        if resource["kind"] in ("Deployment", "StatefulSet"):
            assert _selects(
                resource["spec"]["selector"]["matchLabels"],
                resource["spec"]["template"]["metadata"]["labels"],
            )


# ---- the optional Redis component ----------------------------------------------------------
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_redis_component_validates(with_redis: list[Resource], version: str) -> None:
    kinds = set()
    for resource in with_redis:
        if resource["kind"] not in CRD_KINDS:
            kubernetes_validate.validate(resource, version, strict=True)
            kinds.add(resource["kind"])
    assert {"StatefulSet", "Deployment", "NetworkPolicy", "ConfigMap", "Service"} <= kinds
    assert {r["metadata"]["namespace"] for r in with_redis} == {"torghut"}


def redis_parts(resources: list[Resource]) -> tuple[Resource, dict[str, Any], dict[str, str]]:
    statefulset = named(resources, "StatefulSet", "remediator-redis")
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    config_map = named(resources, "ConfigMap", "remediator-redis")
    return statefulset, dict(container), dict(config_map["data"])


def redis_conf(text: str) -> dict[str, str]:
    """redis.conf directives (the last one of a name wins, as in Redis)."""
    directives = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition(" ")
            directives[name.lower()] = value.strip()
    return directives


def test_the_redis_component_sets_the_remediators_redis_url(with_redis: list[Resource]) -> None:
    env = {e["name"]: e for e in remediator_container(with_redis)["env"]}
    url = env["REMEDIATOR_REDIS_URL"]
    assert "valueFrom" not in url, "the Secret's redis-url must no longer be needed"
    service = named(with_redis, "Service", "remediator-redis")
    (port,) = service["spec"]["ports"]
    assert url["value"] == f"redis://{service['metadata']['name']}:{port['port']}/0"
    statefulset, container, _ = redis_parts(with_redis)
    assert _selects(service["spec"]["selector"], statefulset["spec"]["template"]["metadata"]["labels"])
    assert port["targetPort"] in [p["name"] for p in container["ports"]]
    # The rest of the env is the base's, in the same order.
    assert [e["name"] for e in remediator_container(with_redis)["env"]] == [
        e["name"] for e in remediator_container(render(OVERLAY))["env"]
    ]


def test_the_redis_component_persists_to_a_volume_claim(with_redis: list[Resource]) -> None:
    statefulset, container, data = redis_parts(with_redis)
    spec = statefulset["spec"]
    assert spec["replicas"] == 1
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
    # The config file: the ConfigMap mounted where the args point.
    config_volume = next(n for n, v in volumes.items() if "configMap" in v)
    assert volumes[config_volume]["configMap"]["name"] == "remediator-redis"
    (conf_name,) = data
    assert container.get("args", container.get("command")) == [
        "redis-server",
        f"{mounts[config_volume]}/{conf_name}",
    ]
    conf = redis_conf(data[conf_name])
    assert conf["appendonly"] == "yes"
    assert conf["appendfsync"] == "everysec"
    assert conf["maxmemory-policy"] == "noeviction"
    # Data on the PersistentVolumeClaim, and maxmemory below the container's limit.
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"]
    assert mounts[claim["metadata"]["name"]] == conf["dir"]
    assert claim["metadata"]["name"] not in volumes
    limit = container["resources"]["limits"]["memory"]
    assert limit.endswith("Mi") and conf["maxmemory"].endswith("mb")
    assert int(conf["maxmemory"][:-2]) * 1.5 <= int(limit[:-2])


def test_the_redis_pod_is_probed_non_root_and_limited(with_redis: list[Resource]) -> None:
    statefulset, container, _ = redis_parts(with_redis)
    pod = statefulset["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0 and pod["securityContext"]["fsGroup"]
    assert pod["automountServiceAccountToken"] is False
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["requests"]["memory"] and container["resources"]["limits"]["memory"]
    assert re.fullmatch(r"redis:\d+\.\d+\.\d+-bookworm", container["image"]), (
        "the official Debian-based image, pinned to a release"
    )
    ports = [p["name"] for p in container["ports"]]
    assert container["livenessProbe"]["tcpSocket"]["port"] in ports
    readiness = " ".join(container["readinessProbe"]["exec"]["command"])
    assert "ping" in readiness and "PONG" in readiness


def test_only_the_remediator_reaches_redis(with_redis: list[Resource]) -> None:
    statefulset, _, _ = redis_parts(with_redis)
    redis_pods = statefulset["spec"]["template"]["metadata"]["labels"]
    remediator_pods = named(with_redis, "Deployment", "remediator")["spec"]["template"]["metadata"]["labels"]
    policy = named(with_redis, "NetworkPolicy", "remediator-redis")["spec"]
    assert _selects(policy["podSelector"]["matchLabels"], redis_pods)
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"] and policy["egress"] == []
    (ingress,) = policy["ingress"]
    (source,) = ingress["from"]
    assert set(source) == {"podSelector"}
    assert _selects(source["podSelector"]["matchLabels"], remediator_pods)
    assert ingress["ports"] == [{"port": 6379, "protocol": "TCP"}]
    # ... and the remediator's own policy lets it out to those pods.
    egress = named(with_redis, "NetworkPolicy", "remediator")["spec"]["egress"]
    assert any(
        _selects(peer.get("podSelector", {}).get("matchLabels", {}), redis_pods)
        and {"port": 6379, "protocol": "TCP"} in rule["ports"]
        for rule in egress
        for peer in rule["to"]
    )


def test_the_shipped_redis_conf_runs_on_a_real_redis_server(
    tmp_path: Path, with_redis: list[Resource]
) -> None:
    """The ConfigMap's redis.conf as Redis reads it: only the port, address and directory
    are changed for the test (they are the pod's own in the cluster)."""
    binary = require_binary("redis-server", "/usr/bin/redis-server")
    _, _, data = redis_parts(with_redis)
    conf = tmp_path / "redis.conf"
    # Redis enters `dir` while it reads the file: the pod's /data is this test's tmp_path.
    text, count = re.subn(r"(?m)^dir /data$", f"dir {tmp_path}", data["redis.conf"])
    assert count == 1
    conf.write_text(text, encoding="utf-8")
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            str(conf),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--daemonize",
            "no",
            "--logfile",
            str(tmp_path / "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        try:
            wait_port(port, timeout=20)
        except TimeoutError:
            log = tmp_path / "redis.log"
            raise AssertionError(
                f"redis-server refused the shipped redis.conf (exit "
                f"{proc.poll()}): {log.read_text() if log.exists() else ''}"
            ) from None
        client = redis.Redis(port=port, decode_responses=True)
        try:
            got = {
                key: client.config_get(key)[key]
                for key in ("appendonly", "appendfsync", "maxmemory-policy", "maxmemory")
            }
            assert got == {
                "appendonly": "yes",
                "appendfsync": "everysec",
                "maxmemory-policy": "noeviction",
                "maxmemory": str(256 * 1024 * 1024),
            }
            client.set("remediator:probe", "1")
        finally:
            client.close()
    finally:
        stop_process(proc)
    aof = list(tmp_path.glob("appendonlydir/*.aof"))
    assert aof and b"remediator:probe" in b"".join(p.read_bytes() for p in aof)


# ---- rules.yaml in the ConfigMap ---------------------------------------------------------------
def test_the_deploy_copy_of_rules_yaml_is_current() -> None:
    source = ROOT / "rules.yaml"
    if not source.exists():
        message = "no rules.yaml at the repository root to compare deploy/overlays/torghut/rules.yaml with"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    # The same file, but for its first line: the path to rules.schema.json, from where it is.
    copy = (OVERLAY / "rules.yaml").read_text(encoding="utf-8").split("\n", 1)
    original = source.read_text(encoding="utf-8").split("\n", 1)
    assert copy[1] == original[1], "deploy/overlays/torghut/rules.yaml is stale: run `make deploy-sync`"
    assert copy[0] == "# yaml-language-server: $schema=../../../rules.schema.json"
    assert original[0] == "# yaml-language-server: $schema=rules.schema.json"


def test_the_deploy_rules_are_well_formed() -> None:
    """Schema, matchers and templates; handler names are checked by the next test."""
    document = yaml.safe_load((OVERLAY / "rules.yaml").read_text(encoding="utf-8"))
    parsed = RulesFile.model_validate(document)
    assert [rule.name for rule in parsed.rules] == [
        "clickhouse-replica-readonly",
        "flink-ta-failed",
        "torghut-ws-not-ready",
        "jangar-ch-database",
    ]
    for rule in parsed.rules:
        for matcher in [*rule.matchers, *rule.inhibited_by]:
            parse_matcher(matcher)
        compile_value(rule.target)
        compile_value(rule.params)


def test_the_deploy_rules_load_with_the_shipped_handlers() -> None:
    load_plugins(["handlers"])
    document = yaml.safe_load((OVERLAY / "rules.yaml").read_text(encoding="utf-8"))
    missing = sorted({r["handler"] for r in document["rules"]} - set(default_registry.names()))
    if missing:
        message = f"handlers {missing} are not in this checkout"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    rules = load_rules(OVERLAY / "rules.yaml", default_registry)
    assert len(rules) == 4
    # The base's placeholder (every overlay replaces it) is valid and acts on nothing.
    assert len(load_rules(BASE / "rules.yaml", default_registry)) == 0


# ---- the renderer itself ---------------------------------------------------------------------
def test_json_patch_operations() -> None:
    doc: dict[str, Any] = {"a": {"list": [1, 2], "x/y": 1}}
    json_patch(doc, {"op": "add", "path": "/a/list/-", "value": 3})
    json_patch(doc, {"op": "add", "path": "/a/list/0", "value": 0})
    json_patch(doc, {"op": "replace", "path": "/a/x~1y", "value": 2})
    json_patch(doc, {"op": "remove", "path": "/a/list/1"})
    assert doc == {"a": {"list": [0, 2, 3], "x/y": 2}}
    with pytest.raises(KeyError):
        json_patch(doc, {"op": "replace", "path": "/a/missing", "value": 1})
    json_patch(doc, {"op": "test", "path": "/a/list/0", "value": 0})
    with pytest.raises(ValueError, match="test"):
        json_patch(doc, {"op": "test", "path": "/a/list/0", "value": 1})


def test_renderer_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("commonLabels: {a: b}\n", encoding="utf-8")
    with pytest.raises(Unsupported):
        render(tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        "configMapGenerator: [{name: x, literals: [a=b]}]\n", encoding="utf-8"
    )
    with pytest.raises(Unsupported, match="hash"):
        render(tmp_path)
    (tmp_path / "kustomization.yaml").write_text("resources: [../outside.yaml]\n", encoding="utf-8")
    (tmp_path.parent / "outside.yaml").write_text("kind: X\n", encoding="utf-8")
    with pytest.raises(Unsupported, match="outside"):
        render(tmp_path)


# ---- the container's filesystem ----------------------------------------------------------------
_READ_ONLY = """
set -eu
mount --make-rprivate /
for m in $(awk '{print $2}' /proc/self/mounts | sort -u); do
  mount -o remount,bind,ro "$m" 2>/dev/null || true
done
if touch "$PROBE" 2>/dev/null; then
  rm -f "$PROBE"; echo "the root filesystem is writable"; exit 97
fi
mount --bind "$EMPTYDIR" "$EMPTYDIR"
mount -o remount,bind,rw "$EMPTYDIR"
exec "$@"
"""


def test_service_runs_on_a_read_only_root_filesystem(tmp_path: Path, container: dict[str, Any]) -> None:
    """As in the pod: every mount read-only (a private mount namespace) except one writable
    directory standing for the /tmp emptyDir. The service starts, gets ready and answers."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) to make a read-only mount namespace")
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    empty_dir = tmp_path / "tmp"
    empty_dir.mkdir()
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules: []\n", encoding="utf-8")
    port = free_port()
    env = python_env(
        PROBE=str(ROOT / ".read-only-probe"),
        EMPTYDIR=str(empty_dir),
        TMPDIR=str(empty_dir),
        HOME="/nonexistent",
        PYTHONDONTWRITEBYTECODE="1",
        REMEDIATOR_RULES=str(rules),
        REMEDIATOR_PORT=str(port),
        REMEDIATOR_HOST="127.0.0.1",
        REMEDIATOR_WEBHOOK_TOKEN="a-token-of-16-chars-or-more",
    )
    env.pop("REMEDIATOR_REDIS_URL", None)
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                _READ_ONLY,
                "sh",
                PYTHON,
                "-m",
                "remediator",
                "serve",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd="/",
        )
    try:
        try:
            wait_port(port, timeout=60)
        except TimeoutError:
            code = proc.poll()
            if code is not None and code != 97 and "Operation not permitted" in log.read_text():
                pytest.skip("this kernel/sandbox refuses mount namespaces")
            raise AssertionError(f"serve did not start (exit {code}):\n{log.read_text()}") from None
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as answer:
            assert answer.status == 200
    finally:
        stop_process(proc)
    assert "Read-only file system" not in log.read_text()
    assert '"service.started"' in log.read_text()
