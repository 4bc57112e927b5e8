"""Every overlay under deploy/overlays, alone and with each optional component, as
``kubectl kustomize`` builds it: built-in objects validated by kubernetes-validate, custom
resources (PrometheusRule, ServiceMonitor, the Argo CD Application) against the CRD schemas
in tests/deploy/schemas; the RBAC per namespace of the settings; the NetworkPolicy against the
URLs the shipped rules call; the generated files fresh (``make deploy-sync``)."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml
from aiohttp import web

from remediator.api import slack_interactions
from remediator.console import views
from remediator.handling.registry import default_registry, load_plugins
from remediator.rules.documents import load_all_yaml, load_yaml
from remediator.rules.ruleset import load_rules
from remediator.rules.templates import compile_value, render_value
from remediator.settings import Settings, known_variables
from tests.support.kustomize import Resource, identity, render
from tests.support.procs import PYTHON, ROOT, require_binary

DEPLOY = ROOT / "deploy"
OVERLAYS = sorted(p.name for p in (DEPLOY / "overlays").iterdir() if (p / "kustomization.yaml").is_file())
# The opt-in components, each alone (settings is every overlay's, never optional).
COMPONENTS = sorted(
    p.name
    for p in (DEPLOY / "components").iterdir()
    if (p / "kustomization.yaml").is_file() and p.name != "settings"
)
# Together: every component but the single Redis (redis-sentinel is the other choice).
ALL = [c for c in COMPONENTS if c != "redis"]
SCHEMAS = Path(__file__).parent / "schemas"
CUSTOM = {
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrules.monitoring.coreos.com.v1.yaml",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitors.monitoring.coreos.com.v1.yaml",
    ("argoproj.io/v1alpha1", "Application"): "applications.argoproj.io.v1alpha1.yaml",
}
KUBERNETES_VERSION = "1.33.0"
APPLICATION = DEPLOY / "argocd" / "application.yaml"


def _read(path: Path) -> Any:
    """A shipped YAML file, read strictly (a key written twice fails) as the service reads YAML."""
    return load_yaml(path.read_bytes(), str(path))


def test_there_is_an_example_overlay_and_components_to_try() -> None:
    assert {"example", "torghut"} <= set(OVERLAYS)
    assert set(COMPONENTS) >= {
        "cluster-rbac",
        "console",
        "slack-interactivity",
        "pagerduty",
        "admin-tokens",
        "redis",
        "redis-sentinel",
    }


# ---- building --------------------------------------------------------------------------------
def settings_spec(overlay: str) -> dict[str, Any]:
    document = _read(DEPLOY / "overlays" / overlay / "settings.yaml")
    return dict(document["spec"])


def with_components(overlay: str, components: list[str], directory: Path) -> Path:
    """A copy of the overlay in ``directory`` with ``components`` listed after its own, as a
    user switches them on. Settings only a component reads, and the overlay lacks (torghut
    has no Ingress), come from the example's settings."""
    source = DEPLOY / "overlays" / overlay
    shutil.copytree(source, directory)
    spec = _read(source / "kustomization.yaml")
    for key in ("resources", "components"):
        spec[key] = [
            os.path.relpath((source / e).resolve(), directory) if e.startswith("../") else e
            for e in spec.get(key, [])
        ]
    spec["components"] += [os.path.relpath(DEPLOY / "components" / c, directory) for c in components]
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    settings = _read(source / "settings.yaml")
    for key, value in settings_spec("example").items():
        settings["spec"].setdefault(key, value)
    if "cluster-rbac" in components:
        settings["spec"]["namespaces"] = []  # the ClusterRole covers them
    (directory / "settings.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")
    if "cluster-rbac" in components:
        # What `make deploy-sync` writes for no namespace: the header alone.
        (directory / "rbac.yaml").write_text("# no namespace: the ClusterRole covers them\n", "utf-8")
    return directory


def kubectl_build(directory: Path) -> list[Resource]:
    kubectl = require_binary("kubectl")  # scripts/system-deps.sh installs it
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return [r for r in load_all_yaml(result.stdout, "kubectl kustomize") if r]


CASES: list[tuple[str, list[str]]] = (
    [(o, []) for o in OVERLAYS]
    + [(o, [c]) for o in OVERLAYS for c in COMPONENTS]
    + [(o, ALL) for o in OVERLAYS]
)


def case_id(case: tuple[str, list[str]]) -> str:
    overlay, components = case
    return overlay + ("+all" if components == ALL and len(ALL) > 1 else "".join(f"+{c}" for c in components))


@pytest.fixture(scope="module", params=CASES, ids=case_id)
def built(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, list[str], list[Resource]]:
    overlay, components = request.param
    if not components:
        directory = DEPLOY / "overlays" / overlay
    else:
        directory = with_components(overlay, components, tmp_path_factory.mktemp("build") / overlay)
    resources = kubectl_build(directory)
    ours = {identity(r): r for r in render(directory)}
    assert ours == {identity(r): r for r in resources}, "tests/support/kustomize.py disagrees with kubectl"
    return overlay, components, resources


# ---- schemas ---------------------------------------------------------------------------------
def _closed(schema: Any) -> Any:
    """The schema with every object that names its properties closed to others, as
    ``kubectl apply --validate=strict`` reads a structural schema (unknown fields: errors)."""
    if isinstance(schema, dict):
        schema = {key: _closed(value) for key, value in schema.items()}
        if isinstance(schema.get("pattern"), str) and schema["pattern"].startswith("^(?i)"):
            # Go's RE2 takes a flag after ^; Python wants it first (same meaning).
            schema["pattern"] = "(?i)^" + schema["pattern"].removeprefix("^(?i)")
        if "properties" in schema and "additionalProperties" not in schema:
            if not schema.get("x-kubernetes-preserve-unknown-fields"):
                schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    return schema


@cache
def crd_validator(api_version: str, kind: str) -> jsonschema.Draft4Validator:
    schema = _closed(_read(SCHEMAS / CUSTOM[api_version, kind]))
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def validate(resource: Resource) -> None:
    key = (resource["apiVersion"], resource["kind"])
    if key in CUSTOM:
        crd_validator(*key).validate(resource)
    else:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


def test_every_object_of_every_build_validates(built: tuple[str, list[str], list[Resource]]) -> None:
    _, components, resources = built
    kinds = set()
    for resource in resources:
        validate(resource)
        kinds.add(resource["kind"])
    assert {"Deployment", "NetworkPolicy", "ConfigMap", "PrometheusRule", "ServiceMonitor"} <= kinds
    if "console" in components or "slack-interactivity" in components:
        assert "Ingress" in kinds
    if "cluster-rbac" in components:
        assert {"ClusterRole", "ClusterRoleBinding"} <= kinds and "Role" not in kinds


@pytest.mark.parametrize("key", sorted(CUSTOM), ids=lambda key: key[1])
def test_the_crd_schemas_catch_a_typo_and_a_wrong_type(key: tuple[str, str]) -> None:
    document = APPLICATION if key[1] == "Application" else DEPLOY / "prometheus" / "prometheusrule.yaml"
    if key[1] == "ServiceMonitor":
        document = DEPLOY / "prometheus" / "servicemonitor.yaml"
    good = _read(document)
    crd_validator(*key).validate(good)
    typo = copy.deepcopy(good)
    typo["spec"][
        "projekt" if key[1] == "Application" else "groupz" if key[1] == "PrometheusRule" else "endpoint"
    ] = []
    with pytest.raises(jsonschema.ValidationError, match="Additional properties"):
        crd_validator(*key).validate(typo)
    missing = copy.deepcopy(good)
    del missing["spec"]
    with pytest.raises(jsonschema.ValidationError, match="'spec' is a required property"):
        crd_validator(*key).validate(missing)


def test_the_schema_check_catches_a_bad_rule_duration() -> None:
    rule = _read(DEPLOY / "prometheus" / "prometheusrule.yaml")
    rule["spec"]["groups"][0]["rules"][0]["for"] = "5 minutes"
    with pytest.raises(jsonschema.ValidationError, match="does not match"):
        crd_validator("monitoring.coreos.com/v1", "PrometheusRule").validate(rule)


# ---- the pod's environment -------------------------------------------------------------------
def remediator_container(resources: list[Resource]) -> dict[str, Any]:
    (deployment,) = [
        r for r in resources if r["kind"] == "Deployment" and r["metadata"]["name"] == "remediator"
    ]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def secret_keys(container: dict[str, Any], pod: dict[str, Any]) -> set[str]:
    keys = {
        e["valueFrom"]["secretKeyRef"]["key"]
        for e in container["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    for volume in pod["volumes"]:
        if "secret" in volume:
            assert volume["secret"]["secretName"] == "remediator"
            keys |= {item["key"] for item in volume["secret"]["items"]}
    return keys


def test_every_variable_is_known_and_every_secret_key_documented(
    built: tuple[str, list[str], list[Resource]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, resources = built
    container = remediator_container(resources)
    known = known_variables()
    names = [e["name"] for e in container["env"]]
    assert len(names) == len(set(names)), "a variable set twice"
    assert not [n for n in names if n not in known], "not a remediator variable"
    for ref in [e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e]:
        assert ref["name"] == "remediator"
    (deployment,) = [r for r in resources if r["kind"] == "Deployment"]
    page = (ROOT / "docs" / "deploy.md").read_text("utf-8")
    for key in secret_keys(container, deployment["spec"]["template"]["spec"]):
        named = f"`{key}`" in page or f"--from-literal={key}=" in page
        assert named, f"docs/deploy.md does not name the Secret key {key}"
    # The env the kubelet would give (every secret filled in) loads into the settings.
    for name in [n for n in os.environ if n.startswith("REMEDIATOR_")]:
        monkeypatch.delenv(name)
    for item in container["env"]:
        monkeypatch.setenv(item["name"], item.get("value", "a-secret-of-sixteen-chars-or-more"))
    settings = Settings()
    assert settings.webhook_auth_configured()
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    if settings.admin_tokens_file is not None:
        assert str(settings.admin_tokens_file.parent) in mounts


# ---- Ingress and who reaches the pods ---------------------------------------------------------
def test_ingresses_route_to_the_service_and_the_controller_may_reach_the_pods(
    built: tuple[str, list[str], list[Resource]],
) -> None:
    overlay, _, resources = built
    ingresses = [r for r in resources if r["kind"] == "Ingress"]
    if not ingresses:  # nothing exposed, and nothing but Alertmanager/Prometheus let in
        remediator = {"app.kubernetes.io/name": "remediator"}
        policies = [
            r
            for r in resources
            if r["kind"] == "NetworkPolicy" and r["spec"]["podSelector"].get("matchLabels") == remediator
        ]
        assert not [
            p
            for p in policies
            for rule in p["spec"].get("ingress", [])
            if p["metadata"]["name"] != "remediator"
        ]
        return
    (service,) = [r for r in resources if r["kind"] == "Service" and r["metadata"]["name"] == "remediator"]
    ports = {p["name"] for p in service["spec"]["ports"]}
    settings = settings_spec("example") | settings_spec(overlay)
    for ingress in ingresses:
        (rule,) = ingress["spec"]["rules"]
        assert rule["host"] == settings["ingress"]["host"]
        assert ingress["spec"]["tls"] == [
            {"hosts": [rule["host"]], "secretName": settings["ingress"]["tlsSecretName"]}
        ]
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == "remediator" and backend["port"]["name"] in ports
            assert path["path"] in ("/ui", "/slack/interactions")
        name = ingress["metadata"]["name"]
        (policy,) = [r for r in resources if r["kind"] == "NetworkPolicy" and r["metadata"]["name"] == name]
        (source,) = policy["spec"]["ingress"][0]["from"]
        assert source == {
            "namespaceSelector": {
                "matchLabels": {"kubernetes.io/metadata.name": settings["ingress"]["controllerNamespace"]}
            }
        }
        assert policy["spec"]["ingress"][0]["ports"] == [{"port": 8080, "protocol": "TCP"}]


def test_the_ingress_paths_are_routes_the_service_serves() -> None:
    app = web.Application()
    slack_interactions.add_routes(app)
    views.add_routes(app, Settings(ui=True))
    served = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    assert {"/slack/interactions", "/ui"} <= served
    for component, path_type in (("console", "Prefix"), ("slack-interactivity", "Exact")):
        ingress = _read(DEPLOY / "components" / component / "ingress.yaml")
        (path,) = ingress["spec"]["rules"][0]["http"]["paths"]
        assert path["pathType"] == path_type and path["path"] in served


# ---- RBAC -------------------------------------------------------------------------------------
def role_rules() -> list[dict[str, Any]]:
    return list(_read(DEPLOY / "base" / "role.yaml")["rules"])


def install_namespace(resources: list[Resource]) -> str:
    (account,) = [
        r for r in resources if r["kind"] == "ServiceAccount" and r["metadata"]["name"] == "remediator"
    ]
    return str(account["metadata"]["namespace"])


def test_a_role_and_binding_in_each_namespace_of_the_settings(
    built: tuple[str, list[str], list[Resource]],
) -> None:
    overlay, components, resources = built
    namespace = install_namespace(resources)
    roles = {r["metadata"]["namespace"]: r for r in resources if r["kind"] == "Role"}
    bindings = {r["metadata"]["namespace"]: r for r in resources if r["kind"] == "RoleBinding"}
    wanted = [] if "cluster-rbac" in components else settings_spec(overlay)["namespaces"]
    assert sorted(roles) == sorted(bindings) == sorted(wanted)
    for where, role in roles.items():
        assert role["rules"] == role_rules(), f"the Role in {where} is not deploy/base/role.yaml's"
        assert bindings[where]["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": role["metadata"]["name"],
        }
        assert bindings[where]["subjects"] == [
            {"kind": "ServiceAccount", "name": "remediator", "namespace": namespace}
        ]
    cluster = [r for r in resources if r["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    if "cluster-rbac" not in components:
        assert cluster == []
        return
    (role,) = [r for r in cluster if r["kind"] == "ClusterRole"]
    (binding,) = [r for r in cluster if r["kind"] == "ClusterRoleBinding"]
    assert role["rules"] == role_rules(), "the same least-privilege verbs, in every namespace"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "remediator",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "remediator", "namespace": namespace}]


def test_the_example_installs_in_its_own_namespace_and_acts_in_others() -> None:
    resources = render(DEPLOY / "overlays" / "example")
    namespace = install_namespace(resources)
    assert namespace == "remediator"
    acts = settings_spec("example")["namespaces"]
    assert namespace not in acts and len(acts) >= 2, "no rights where it runs; several namespaces"
    assert {r["metadata"]["namespace"] for r in resources if r["kind"] not in ("Role", "RoleBinding")} == {
        namespace
    }


# ---- egress: the URLs the shipped rules call ---------------------------------------------------
def http_urls(rules_file: Path) -> list[tuple[str, str]]:
    """(rule, URL template) of every probe and every http.request of the file."""
    document = _read(rules_file)
    found = []
    for rule in document["rules"]:
        if "probe" in rule:
            found.append((rule["name"], rule["probe"]["url"]))
        if rule["handler"] == "http.request":
            found.append((rule["name"], rule["params"]["url"]))
    return found


def allowed(policy: Resource, namespace: str, port: int) -> bool:
    for rule in policy["spec"]["egress"]:
        ports = {p["port"] for p in rule.get("ports", [])}
        for peer in rule["to"]:
            selector = peer.get("namespaceSelector")
            if selector is None or "podSelector" in peer:
                continue
            names: set[str] = set()
            for expression in selector.get("matchExpressions", []):
                if expression["key"] == "kubernetes.io/metadata.name" and expression["operator"] == "In":
                    names |= set(expression["values"])
            if namespace in names and port in ports:
                return True
    return False


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_in_cluster_url_of_the_rules_is_allowed_by_the_network_policy(overlay: str) -> None:
    directory = DEPLOY / "overlays" / overlay
    resources = render(directory)
    (policy,) = [
        r for r in resources if r["kind"] == "NetworkPolicy" and r["metadata"]["name"] == "remediator"
    ]
    urls = http_urls(directory / "rules.yaml")
    assert urls, f"{overlay}'s rules call no URL: nothing to check"
    for rule, template in urls:
        # A namespace taken from the alert is any namespace the installation acts in.
        for namespace in settings_spec(overlay)["namespaces"]:
            labels = {"namespace": namespace, "deployment": "app", "service": "app", "alertname": "A"}
            url = render_value(compile_value(template), {"labels": labels, "annotations": {}})
            parts = urlsplit(url)
            host = parts.hostname or ""
            if not host.endswith(".svc.cluster.local") and not host.endswith(".svc"):
                continue  # outside the cluster: HTTPS through egress.httpsCidr
            port = parts.port or (443 if parts.scheme == "https" else 80)
            target_namespace = host.split(".")[1]
            assert allowed(policy, target_namespace, port), (
                f"{overlay}: rule {rule} calls {url}, which its NetworkPolicy does not allow "
                f"(add {target_namespace} and port {port} to settings.yaml's egress.http)"
            )


def test_the_jangar_probe_is_allowed_on_port_80_in_torghut() -> None:
    policy = next(r for r in render(DEPLOY / "overlays" / "torghut") if r["kind"] == "NetworkPolicy")
    assert allowed(policy, "torghut", 80)
    assert not allowed(policy, "torghut", 8081) and not allowed(policy, "kube-system", 80)


# ---- the shipped rules of every overlay ---------------------------------------------------------
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_overlays_rules_pass_remediator_check(overlay: str) -> None:
    rules = DEPLOY / "overlays" / overlay / "rules.yaml"
    result = subprocess.run(
        [PYTHON, "-m", "remediator", "check", "--strict", str(rules)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("REMEDIATOR_")},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout
    load_plugins(["handlers"])
    assert load_rules(rules, default_registry)


def test_the_example_rules_are_dry_run_and_mark_the_place_of_the_new_handlers() -> None:
    text = (DEPLOY / "overlays" / "example" / "rules.yaml").read_text("utf-8")
    document = load_yaml(text, "the edited copy")
    assert document["defaults"]["dry_run"] is True
    assert not [r["name"] for r in document["rules"] if r.get("dry_run") is False]
    assert "NEW HANDLERS GO HERE" in text
    for handler in (
        "kubernetes.rollout_restart",
        "kubernetes.delete_pod",
        "kubernetes.scale",
        "kubernetes.cordon",
    ):
        assert handler in text
    # Every rule acts only in the namespaces the installation has a Role in.
    for rule in document["rules"]:
        assert 'namespace=~"web|workers"' in rule["matchers"], rule["name"]
    assert settings_spec("example")["namespaces"] == ["web", "workers"]


# ---- Argo CD ------------------------------------------------------------------------------------
def test_the_argocd_application_validates_and_points_at_an_overlay() -> None:
    application = _read(APPLICATION)
    validate(application)
    spec = application["spec"]
    path = ROOT / spec["source"]["path"]
    assert path.parent == DEPLOY / "overlays" and path.name in OVERLAYS
    assert spec["destination"]["namespace"] == install_namespace(render(path))
    assert "CreateNamespace=true" in spec["syncPolicy"]["syncOptions"]


# ---- make deploy-sync ----------------------------------------------------------------------------
def sync(*args: str, root: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "sync_deploy.py"), "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_generated_files_are_fresh() -> None:
    result = sync("--check")
    assert result.returncode == 0, result.stderr + "\nrun `make deploy-sync`"


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    for name in ("rules.yaml", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(DEPLOY, tmp_path / "deploy")
    return tmp_path


def set_settings(root: Path, overlay: str, **changes: Any) -> None:
    path = root / "deploy" / "overlays" / overlay / "settings.yaml"
    document = _read(path)
    document["spec"].update(changes)
    path.write_text(yaml.safe_dump(document), encoding="utf-8")


def test_a_new_namespace_is_stale_until_synced_then_gets_its_role(repo_copy: Path) -> None:
    set_settings(repo_copy, "example", namespaces=["web", "workers", "batch"])
    result = sync("--check", root=repo_copy)
    assert result.returncode == 1
    assert "deploy/overlays/example/rbac.yaml is stale: run `make deploy-sync`" in result.stderr
    assert sync(root=repo_copy).returncode == 0
    assert sync("--check", root=repo_copy).returncode == 0
    roles = [r for r in render(repo_copy / "deploy" / "overlays" / "example") if r["kind"] == "Role"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["batch", "web", "workers"]


def test_an_edit_of_the_role_or_the_rules_is_stale_until_synced(repo_copy: Path) -> None:
    role = repo_copy / "deploy" / "base" / "role.yaml"
    role.write_text(role.read_text("utf-8").replace("verbs: [list]", "verbs: [list, watch]", 1), "utf-8")
    (repo_copy / "rules.yaml").write_text((ROOT / "rules.yaml").read_text("utf-8") + "# edited\n", "utf-8")
    stale = sync("--check", root=repo_copy).stderr
    for path in (
        "deploy/overlays/example/rbac.yaml",
        "deploy/overlays/torghut/rbac.yaml",
        "deploy/components/cluster-rbac/clusterrole.yaml",
        "deploy/overlays/torghut/rules.yaml",
    ):
        assert f"{path} is stale" in stale
    assert sync(root=repo_copy).returncode == 0
    clusterrole = _read(repo_copy / "deploy/components/cluster-rbac/clusterrole.yaml")
    assert {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["list", "watch"]} in clusterrole[
        "rules"
    ]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"namespaces": []}, "spec.namespaces: a list of namespace names is required"),
        ({"namespaces": ["Web"]}, "'Web' is not a namespace name"),
        ({"namespaces": ["web", "web"]}, "listed twice"),
        (
            {
                "egress": {
                    "kubernetesApiCidr": "10.0.0.1/32",
                    "httpsCidr": "0.0.0.0/0",
                    "http": {"namespaces": ["web"], "ports": []},
                }
            },
            "a NetworkPolicy rule without ports allows every port",
        ),
        (
            {
                "egress": {
                    "kubernetesApiCidr": "10.0.0.1/32",
                    "httpsCidr": "0.0.0.0/0",
                    "http": {"namespaces": ["web"], "ports": [{"port": 70000}]},
                }
            },
            "neither a port number nor a port name",
        ),
        ({"egress": {"kubernetesApiCidr": "10.0.0.1/32", "httpsCidr": "0.0.0.0/0"}}, "spec.egress.http"),
    ],
    ids=["no-namespace", "bad-name", "twice", "no-port", "bad-port", "no-http"],
)
def test_settings_that_cannot_work_are_refused_by_name(
    repo_copy: Path, changes: dict[str, Any], message: str
) -> None:
    set_settings(repo_copy, "example", **changes)
    before = (repo_copy / "deploy" / "overlays" / "example" / "rbac.yaml").read_text("utf-8")
    result = sync(root=repo_copy)
    assert result.returncode == 2
    assert message in result.stderr and "deploy/overlays/example/settings.yaml" in result.stderr
    assert (repo_copy / "deploy" / "overlays" / "example" / "rbac.yaml").read_text("utf-8") == before


def test_no_namespace_is_allowed_with_the_cluster_role(repo_copy: Path) -> None:
    set_settings(repo_copy, "example", namespaces=[])
    kustomization = repo_copy / "deploy" / "overlays" / "example" / "kustomization.yaml"
    text = kustomization.read_text("utf-8")
    line = "  # - ../../components/cluster-rbac "
    assert line in text
    kustomization.write_text(text.replace(line, "  - ../../components/cluster-rbac #"), "utf-8")
    assert sync(root=repo_copy).returncode == 0
    resources = render(repo_copy / "deploy" / "overlays" / "example")
    assert {r["kind"] for r in resources} >= {"ClusterRole", "ClusterRoleBinding"}
    assert not [r for r in resources if r["kind"] in ("Role", "RoleBinding")]
