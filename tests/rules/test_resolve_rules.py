"""``resolve:`` in rules.yaml: validated by ``check`` (its keys, its fixed names, ``owner``
used without it), rendered per alert with untrusted labels checked, and shown by
``simulate``: the pod and "resolved at run time", or with ``--kube`` the owner itself."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import handlers  # noqa: F401  (the owner resolver)
from remediator.cli.main import main
from remediator.errors import RulesError, TemplateError
from remediator.handling.registry import Registry, default_registry
from remediator.models import Alert
from remediator.rules.rule import render_pod
from remediator.rules.ruleset import parse_rules, render
from tests.support.kube import DEPLOYMENTS, PODS, Cluster, DeploymentController, deployment, running_cluster
from tests.support.payloads import alert, payload

RULE = """
rules:
  - name: crashloop
    matchers: ['alertname="KubePodCrashLooping"']
    resolve: {pod: '{{ labels.pod }}', namespace: '{{ labels.namespace }}'}
    handler: kubernetes.rollout_restart
    target: '{{ owner.kind | lower }}/{{ owner.namespace }}/{{ owner.name }}'
    params: {namespace: '{{ owner.namespace }}', kind: '{{ owner.kind }}', name: '{{ owner.name }}'}
"""


def problems(text: str, registry: Registry = default_registry) -> list[str]:
    with pytest.raises(RulesError) as caught:
        parse_rules(text.encode(), "rules.yaml", registry)
    return caught.value.problems


def test_a_resolve_rule_loads_and_renders_the_pod_then_the_owners_plan() -> None:
    (rule,) = parse_rules(RULE.encode(), "rules.yaml", default_registry).rules
    assert rule.resolve is not None and rule.resolve.resolver is default_registry.resolver
    fired = Alert.model_validate(alert("KubePodCrashLooping", namespace="web", pod="api-7d9f-x2"))
    pod = render_pod(rule, fired)
    assert (pod.namespace, pod.pod) == ("web", "api-7d9f-x2")
    with pytest.raises(TemplateError, match="found at run time"):
        render(rule, fired)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("{pod: '{{ labels.pod }}', namespace:", "{pods: '{{ labels.pod }}', namespace:"),
            "resolve.pods: unknown key",
        ),
        ((", namespace: '{{ labels.namespace }}'}", "}"), "resolve.namespace: Field required"),
        (("'{{ labels.namespace }}'}", "'Web_1'}"), "resolve: 'Web_1' is not a valid Kubernetes name"),
        (("{pod: '{{ labels.pod }}'", "{pod: '{{ labels.pod '"), "resolve: template"),
    ],
)
def test_check_validates_the_key(change: tuple[str, str], expected: str) -> None:
    text = RULE.replace(*change)
    assert text != RULE
    found = problems(text)
    assert all(p.startswith("rule 'crashloop' (line 3): ") for p in found), found
    assert any(expected in p for p in found), found


def test_owner_without_resolve_is_an_error_at_check() -> None:
    text = RULE.replace("    resolve: {pod: '{{ labels.pod }}', namespace: '{{ labels.namespace }}'}\n", "")
    (problem,) = problems(text)
    assert (
        "target uses owner (the pod's owner), which only a rule with resolve: {pod: ..., namespace: ...} has"
        in (problem)
    )


def test_resolve_needs_a_registered_resolver() -> None:
    registry = Registry()
    registry.add(default_registry.get("kubernetes.rollout_restart"))  # type: ignore[arg-type]
    (problem,) = problems(RULE, registry)
    assert "resolve: no owner resolver is registered" in problem


@pytest.mark.parametrize("hostile", ["../x", "a b", "POD", "x" * 254, "a;b"])
def test_an_untrusted_pod_label_is_refused_at_render(hostile: str) -> None:
    (rule,) = parse_rules(RULE.encode(), "rules.yaml", default_registry).rules
    fired = Alert.model_validate(alert("KubePodCrashLooping", namespace="web", pod=hostile))
    with pytest.raises(TemplateError, match="is not a valid Kubernetes name"):
        render_pod(rule, fired)


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULE)
    alerts = tmp_path / "payload.json"
    alerts.write_text(
        json.dumps(
            payload(
                alert("KubePodCrashLooping", namespace="web", pod="api-7d9f-x2"),
                alert("KubePodCrashLooping", namespace="web", pod="api-gone"),
            )
        )
    )
    return rules, alerts


def test_simulate_shows_the_pod_and_says_the_owner_is_resolved_at_run_time(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    rules, alerts = files
    assert main(["simulate", str(alerts), "--rules", str(rules)]) == 0
    out = capsys.readouterr().out
    assert "    pod: web/api-7d9f-x2\n" in out
    assert "    owner: resolved at run time: the workload that owns the pod (--kube resolves it now)" in out
    assert "target:" not in out
    assert main(["simulate", str(alerts), "--rules", str(rules), "--json"]) == 0
    (first, _) = json.loads(capsys.readouterr().out)
    assert first["matches"][0]["pod"] == "web/api-7d9f-x2" and "target" not in first["matches"][0]


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[tuple[Cluster, Path]]:
    async with running_cluster(tmp_path) as (cluster, kubeconfig):
        yield cluster, kubeconfig


async def test_simulate_with_kube_resolves_the_owner(
    files: tuple[Path, Path],
    cluster: tuple[Cluster, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emulator, kubeconfig = cluster
    emulator.put(DEPLOYMENTS, "web", deployment("api", replicas=1, labels={"app": "api"}))
    controller = DeploymentController(emulator, "web", "api")
    for _ in range(4):
        controller.step()
    (made,) = emulator.items(PODS, "web", "app=api")
    rules, alerts = files
    data = json.loads(alerts.read_text())
    data["alerts"][0]["labels"]["pod"] = made["metadata"]["name"]
    alerts.write_text(json.dumps(data))
    monkeypatch.setenv("KUBECONFIG", "/nonexistent")  # restored after: --kube sets it for the process
    code = await _in_thread(["simulate", str(alerts), "--rules", str(rules), "--kube", str(kubeconfig)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"    owner: Pod web/{made['metadata']['name']} -> ReplicaSet web/api-" in out
    assert "-> Deployment web/api\n    target: deployment/web/api\n" in out
    assert "    plan: GET /apis/apps/v1/namespaces/web/deployments/api\n" in out
    assert "<the time of the run, RFC 3339>" in out  # the plan without I/O: the time is the run's
    assert not out.startswith("20"), "no log line in simulate's output"
    assert "    skipped:gone: Pod web/api-gone is gone (replaced or deleted since the alert fired)" in out
    assert {c.verb for c in emulator.calls} == {"get"}, "simulate only reads"


async def _in_thread(argv: list[str]) -> int:
    """``main`` runs its own event loop (asyncio.run): off this test's loop, which serves the
    emulator meanwhile."""
    import asyncio

    return await asyncio.to_thread(main, argv)
