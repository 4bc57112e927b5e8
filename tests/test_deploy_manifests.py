"""deploy/: the kustomize base and the torghut overlay, rendered with kustomize semantics
(tests/support/kustomize.py; cross-checked with `kubectl kustomize` where installed) and
validated against the Kubernetes JSON schemas (kubernetes-validate)."""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from aiohttp import web

from remediator import server
from remediator.matchers import parse_matcher
from remediator.registry import default_registry, load_plugins
from remediator.rules import RulesFile, load_rules
from remediator.settings import Settings
from remediator.templates import compile_value
from tests.support.kustomize import Resource, Unsupported, identity, json_patch, render
from tests.support.procs import (
    PYTHON,
    ROOT,
    free_port,
    python_env,
    stop_process,
    wait_port,
)

BASE = ROOT / "deploy" / "base"
OVERLAY = ROOT / "deploy" / "overlays" / "torghut"
KUBERNETES_VERSIONS = ("1.29.0", "1.33.0")
CRD_KINDS = {"PrometheusRule", "ServiceMonitor"}


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


# ---- schemas -----------------------------------------------------------------------------
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("directory", [BASE, OVERLAY], ids=["base", "torghut"])
def test_every_manifest_validates_against_the_kubernetes_schema(
    directory: Path, version: str
) -> None:
    resources = render(directory)
    validated = set()
    for resource in resources:
        if resource["kind"] in CRD_KINDS:
            continue  # no schema in kubernetes-validate; checked by the tests below
        kubernetes_validate.validate(resource, version, strict=True)
        validated.add(resource["kind"])
    assert validated >= {"Deployment", "Service", "ServiceAccount", "Role", "RoleBinding",
                         "ConfigMap", "PodDisruptionBudget", "NetworkPolicy"}


def test_the_schema_check_catches_a_typo(deployment: Resource) -> None:
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("directory", [BASE, OVERLAY, ROOT / "deploy" / "prometheus"],
                         ids=["base", "torghut", "prometheus"])
def test_renderer_agrees_with_kubectl_kustomize(directory: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        # Not packaged by Debian, so CI machines may not have it: the renderer stands in.
        pytest.skip("kubectl is not installed; the test renderer alone renders deploy/")
    out = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    theirs = {identity(r): r for r in yaml.safe_load_all(out) if r}
    ours = {identity(r): r for r in render(directory)}
    assert ours == theirs


def test_overlay_puts_everything_in_torghut(overlay: list[Resource]) -> None:
    assert {r["metadata"].get("namespace") for r in overlay} == {"torghut"}
    kinds = sorted(r["kind"] for r in overlay)
    assert kinds == sorted(["ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Service",
                            "Deployment", "PodDisruptionBudget", "NetworkPolicy",
                            "PrometheusRule", "ServiceMonitor"])


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
        ("", "pods", "list"),
    }
    assert not any("resourceNames" in rule or "nonResourceURLs" in rule for rule in role["rules"])
    assert not [r for r in overlay if r["kind"] in ("ClusterRole", "ClusterRoleBinding")]


def test_rolebinding_binds_the_role_to_the_service_account(overlay: list[Resource]) -> None:
    binding, role = by_kind(overlay, "RoleBinding"), by_kind(overlay, "Role")
    account = by_kind(overlay, "ServiceAccount")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount",
                                    "name": account["metadata"]["name"],
                                    "namespace": "torghut"}]


# ---- the Deployment ------------------------------------------------------------------------
def test_deployment_runs_two_hardened_replicas(deployment: Resource,
                                               container: dict[str, Any]) -> None:
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
    assert container["image"] == "ghcr.io/torghut/remediator:0.1.0"
    assert container["args"] == ["serve"]


def test_pod_uid_is_the_images_user(deployment: Resource) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    users = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER ")]
    uid = int(users[-1].split(":")[0])
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == uid


def test_probes_hit_routes_the_service_serves(container: dict[str, Any]) -> None:
    app = web.Application()
    server.add_routes(app)
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
    (name, mount), = [(n, m) for n, m in mounts.items() if "configMap" in volumes[n]]
    assert "subPath" not in mount, "a subPath mount never sees ConfigMap updates"
    assert Path(mount["mountPath"]) == rules_path.parent
    config_map = by_kind(overlay, "ConfigMap")
    assert volumes[name]["configMap"]["name"] == config_map["metadata"]["name"]
    assert config_map["data"][rules_path.name] == (BASE / "rules.yaml").read_text("utf-8")
    assert mounts["tmp"]["mountPath"] == "/tmp" and "emptyDir" in volumes["tmp"]


def test_secrets_come_from_the_secret(container: dict[str, Any]) -> None:
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]
            if "valueFrom" in e}
    assert {name: (ref["name"], ref.get("optional", False)) for name, ref in refs.items()} == {
        "REMEDIATOR_WEBHOOK_TOKEN": ("remediator", False),
        "REMEDIATOR_REDIS_URL": ("remediator", False),
        "REMEDIATOR_ADMIN_TOKEN": ("remediator", True),
        "REMEDIATOR_SLACK_BOT_TOKEN": ("remediator", True),
        "REMEDIATOR_CLICKHOUSE_PASSWORD": ("remediator", True),
    }
    plain = [e for e in container["env"] if "value" in e]
    assert not [e for e in plain if any(w in e["name"] for w in ("TOKEN", "PASSWORD", "URL"))]


def test_every_environment_variable_is_a_setting(container: dict[str, Any]) -> None:
    fields = set(Settings.model_fields)
    for item in container["env"]:
        name = item["name"]
        assert name.startswith("REMEDIATOR_"), name
        key = name.removeprefix("REMEDIATOR_").removesuffix("_FILE").lower()
        assert key in fields, f"{name} is not a setting of remediator.settings.Settings"


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


def test_service_pdb_and_policy_select_the_pods(overlay: list[Resource],
                                                deployment: Resource) -> None:
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert _selects(deployment["spec"]["selector"]["matchLabels"], pod_labels)
    service = by_kind(overlay, "Service")
    assert _selects(service["spec"]["selector"], pod_labels)
    assert service["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": "http",
                                         "protocol": "TCP"}]
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
    assert source["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name":
                                                          "monitoring"}
    allowed = {(p["port"], p["protocol"]) for rule in policy["egress"] for p in rule["ports"]}
    assert allowed == {(53, "UDP"), (53, "TCP"), (6379, "TCP"), (9000, "TCP"), (443, "TCP"),
                       (6443, "TCP")}


# ---- rules.yaml in the ConfigMap ---------------------------------------------------------------
def test_the_deploy_copy_of_rules_yaml_is_current() -> None:
    source = ROOT / "rules.yaml"
    if not source.exists():
        message = "no rules.yaml at the repository root to compare deploy/base/rules.yaml with"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    assert (BASE / "rules.yaml").read_bytes() == source.read_bytes(), \
        "deploy/base/rules.yaml is stale: run `make deploy-sync`"


def test_the_deploy_rules_are_well_formed() -> None:
    """Schema, matchers and templates; handler names are checked by the next test."""
    document = yaml.safe_load((BASE / "rules.yaml").read_text(encoding="utf-8"))
    parsed = RulesFile.model_validate(document)
    assert [rule.name for rule in parsed.rules] == [
        "clickhouse-replica-readonly", "flink-ta-failed", "torghut-ws-not-ready"]
    for rule in parsed.rules:
        for matcher in [*rule.matchers, *rule.inhibited_by]:
            parse_matcher(matcher)
        compile_value(rule.target)
        compile_value(rule.params)


def test_the_deploy_rules_load_with_the_shipped_handlers() -> None:
    load_plugins(["handlers"])
    document = yaml.safe_load((BASE / "rules.yaml").read_text(encoding="utf-8"))
    missing = sorted({r["handler"] for r in document["rules"]} - set(default_registry.names()))
    if missing:
        message = f"handlers {missing} are not in this checkout"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    rules = load_rules(BASE / "rules.yaml", default_registry)
    assert len(rules) == 3


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


def test_renderer_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("commonLabels: {a: b}\n", encoding="utf-8")
    with pytest.raises(Unsupported):
        render(tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        "configMapGenerator: [{name: x, literals: [a=b]}]\n", encoding="utf-8")
    with pytest.raises(Unsupported, match="hash"):
        render(tmp_path)
    (tmp_path / "kustomization.yaml").write_text("resources: [../outside.yaml]\n",
                                                 encoding="utf-8")
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


def test_service_runs_on_a_read_only_root_filesystem(
    tmp_path: Path, container: dict[str, Any]
) -> None:
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
    env = python_env(PROBE=str(ROOT / ".read-only-probe"), EMPTYDIR=str(empty_dir),
                     TMPDIR=str(empty_dir), HOME="/nonexistent", PYTHONDONTWRITEBYTECODE="1",
                     REMEDIATOR_RULES=str(rules), REMEDIATOR_PORT=str(port),
                     REMEDIATOR_HOST="127.0.0.1",
                     REMEDIATOR_WEBHOOK_TOKEN="a-token-of-16-chars-or-more")
    env.pop("REMEDIATOR_REDIS_URL", None)
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", _READ_ONLY, "sh",
             PYTHON, "-m", "remediator", "serve"],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd="/",
        )
    try:
        try:
            wait_port(port, timeout=60)
        except TimeoutError:
            code = proc.poll()
            if code is not None and code != 97 and "Operation not permitted" in log.read_text():
                pytest.skip("this kernel/sandbox refuses mount namespaces")
            raise AssertionError(
                f"serve did not start (exit {code}):\n{log.read_text()}") from None
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as answer:
            assert answer.status == 200
    finally:
        stop_process(proc)
    assert "Read-only file system" not in log.read_text()
    assert '"service.started"' in log.read_text()
