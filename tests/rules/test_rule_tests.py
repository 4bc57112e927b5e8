"""``remediator test``: rule tests as ``promtool test rules`` runs them. The shipped rules'
tests pass (this is how CI runs them); a failing test exits 1 with a diff; an invalid file
exits 2 naming the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.test_pages import blocks
from tests.support.cli import run_main
from tests.support.procs import ROOT

SHIPPED = ["rules.test.yaml", "deploy/overlays/example/rules.test.yaml"]

RULES = """\
maintenance_windows:
  - name: shop-nightly
    matchers: ['namespace="shop"']
    weekdays: [mon, tue, wed, thu, fri]
    start: "02:30"
    duration: 90m
    time_zone: Europe/Paris
rules:
  - name: web-restart
    matchers: ['alertname="WebDown"']
    handler: http.request
    target: 'web/{{ labels.namespace }}'
    params: {url: 'http://runbooks.local/{{ labels.namespace }}', method: POST}
    approval: {approvers: [U123ABC], timeout: 20m}
  - name: cache-flush
    matchers: ['alertname="CacheStale"']
    handler: http.request
    target: 'cache/{{ labels.namespace }}'
    params: {url: 'http://runbooks.local/flush'}
"""

PASSING = """\
rule_files: [rules.yaml]
tests:
  - name: at night the window holds it, then it awaits approval
    at: 2026-12-08T02:00:00Z
    alerts:
      - labels: {alertname: WebDown, namespace: shop}
    expect:
      - rule: web-restart
        target: web/shop
        params: {method: POST}
        held_by: [window, approval]
  - name: by day only the approval
    at: "2026-12-08T13:00:00+01:00"
    alerts:
      - labels: {alertname: WebDown, namespace: shop}
    expect:
      - {rule: web-restart, target: web/shop, held_by: approval}
  - name: another namespace is outside the window
    at: 2026-12-08T02:00:00Z
    alerts:
      - labels: {alertname: WebDown, namespace: blog}
      - labels: {alertname: CacheStale, namespace: shop}
    expect:
      - {rule: web-restart, target: web/blog, held_by: approval}
      - {rule: cache-flush, target: cache/shop, held_by: window}
  - name: nothing matches an unknown alert
    alerts:
      - labels: {alertname: Unknown}
    expect: []
"""


def write(tmp_path: Path, test: str, rules: str = RULES, name: str = "web.test.yaml") -> Path:
    (tmp_path / "rules.yaml").write_text(rules, encoding="utf-8")
    path = tmp_path / name
    path.write_text(test, encoding="utf-8")
    return path


def test_the_shipped_rules_pass_their_tests() -> None:
    done = run_main("test", *SHIPPED)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        "rules.test.yaml: 7 test(s), all passed",
        "deploy/overlays/example/rules.test.yaml: 6 test(s), all passed",
    ]


def test_the_documented_example_passes(tmp_path: Path) -> None:
    page = ROOT / "docs" / "how-to" / "rule-tests.md"
    rules, test = (b for b in blocks(page, "yaml") if "rule_files:" in b or "maintenance_windows:" in b)
    path = write(tmp_path, test, rules, "rules.test.yaml")
    done = run_main("test", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.endswith("test(s), all passed\n")


def test_windows_approvals_params_and_nothing_pass(tmp_path: Path) -> None:
    done = run_main("test", str(write(tmp_path, PASSING)))
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"{tmp_path}/web.test.yaml: 4 test(s), all passed\n"


def test_a_rules_file_named_by_an_absolute_path(tmp_path: Path) -> None:
    path = write(tmp_path, PASSING.replace("[rules.yaml]", f"[{tmp_path / 'rules.yaml'}]"))
    (tmp_path / "elsewhere").mkdir()
    moved = path.rename(tmp_path / "elsewhere" / path.name)
    assert run_main("test", str(moved)).returncode == 0


def test_a_failing_test_exits_1_with_a_diff(tmp_path: Path) -> None:
    failing = PASSING.replace("held_by: [window, approval]", "held_by: approval").replace(
        "    expect: []", "    expect:\n      - {rule: cache-flush, target: cache/x}"
    )
    done = run_main("test", str(write(tmp_path, failing)))
    assert done.returncode == 1 and done.stderr == ""
    out = done.stdout.splitlines()
    first = out.index(
        f"{tmp_path}/web.test.yaml:3: FAILED: at night the window holds it, then it awaits approval"
    )
    assert out[first + 1 : first + 23] == [
        "  expected:",
        "    - rule: web-restart",
        "      target: web/shop",
        "      params:",
        "        method: POST",
        "      held_by: approval",
        "  found:",
        "    - rule: web-restart",
        "      target: web/shop",
        "      params:",
        "        method: POST",
        "      held_by:",
        "      - approval",
        "      - window",
        "  diff (- expected, + found):",
        "        target: web/shop",
        "        params:",
        "          method: POST",
        "    -   held_by: approval",
        "    +   held_by:",
        "    +   - approval",
        "    +   - window",
    ]
    assert f"{tmp_path}/web.test.yaml:26: FAILED: nothing matches an unknown alert" in out
    assert "    - - rule: cache-flush" in out and "    + []  # nothing matches" in out
    assert out[-1] == f"{tmp_path}/web.test.yaml: 4 test(s), 2 FAILED"


def test_a_match_nobody_expected_fails(tmp_path: Path) -> None:
    test = PASSING.replace("      - {rule: cache-flush, target: cache/shop, held_by: window}\n", "")
    done = run_main("test", str(write(tmp_path, test)))
    assert done.returncode == 1
    assert "    +   - rule: cache-flush" in done.stdout or "    + - rule: cache-flush" in done.stdout


def test_params_must_hold_the_values_given(tmp_path: Path) -> None:
    done = run_main("test", str(write(tmp_path, PASSING.replace("{method: POST}", "{method: GET, nope: 1}"))))
    assert done.returncode == 1
    assert "    -     method: GET" in done.stdout and "    +     method: POST" in done.stdout
    assert "    +     nope: <missing>" in done.stdout


def test_an_invalid_file_exits_2_naming_file_and_line(tmp_path: Path) -> None:
    bad = """\
rule_files: [rules.yaml]
tests:
  - name: broken
    at: tomorrow
    alerts:
      - labels: {alertname: WebDown, code: 500}
        startsAt: 2026-12-08T02:00:00
    expect:
      - rule: web-restart
        held_by: windoe
        extra: 1
"""
    path = write(tmp_path, bad)
    done = run_main("test", str(path))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        f"{path}:4: tests[0].at: 'tomorrow': expected an RFC 3339 time with an offset "
        "(2026-12-08T02:30:00Z), or a duration relative to now (+2h, -30m), or 'now'",
        f"{path}:6: tests[0].alerts[0].labels.code: Input should be a valid string",
        f"{path}:7: tests[0].alerts[0].startsAt: a time needs an offset (Z or +01:00)",
        f"{path}:9: tests[0].expect[0].target: Field required",
        f"{path}:10: tests[0].expect[0].held_by: expected one of window, approval, or a list of them "
        "([] for none)",
        f"{path}:11: tests[0].expect[0].extra: unknown key",
        f"{path}: invalid test file, not run",
    ]


ONE_TEST = "  - {name: x, alerts: [{labels: {a: b}}], expect: []}\n"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("rule_files: [rules.yaml]\ntests: [\n", ":3:1: not valid YAML: expected the node content"),
        ("rule_files: [a.yaml]\nrule_files: [b.yaml]\ntests: []\n", "the key 'rule_files' is written twice"),
        (
            "rule_files: [missing.yaml]\ntests:\n" + ONE_TEST,
            ":1: rule_files[0]: ",
        ),
        (
            "rule_files: [rules.yaml, rules.yaml]\ntests:\n" + ONE_TEST,
            "the rule 'web-restart' is in ",
        ),
        ("tests: []\n", ":1: rule_files: Field required"),
    ],
)
def test_every_kind_of_invalid_file_exits_2(tmp_path: Path, text: str, problem: str) -> None:
    path = write(tmp_path, text)
    done = run_main("test", str(path), str(write(tmp_path, PASSING, name="ok.test.yaml")))
    assert done.returncode == 2, done.stderr
    assert problem in done.stderr and f"{path}: invalid test file, not run" in done.stderr
    assert done.stdout == f"{tmp_path}/ok.test.yaml: 4 test(s), all passed\n"  # the valid file still runs


def test_a_broken_rules_file_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, PASSING, RULES.replace("handler: http.request", "handler: http.requset", 1))
    done = run_main("test", str(path))
    assert done.returncode == 2
    assert f"{path}:1: rule_files[0]: {tmp_path}/rules.yaml: rule 'web-restart'" in done.stderr
    assert "unknown handler 'http.requset'" in done.stderr


def test_a_resolve_rule_needs_the_owner_named(tmp_path: Path) -> None:
    rules = """\
rules:
  - name: pod-crash
    matchers: ['alertname="KubePodCrashLooping"']
    resolve: {pod: '{{ labels.pod }}', namespace: '{{ labels.namespace }}'}
    handler: kubernetes.delete_pod
    target: '{{ owner.kind | lower }}/{{ owner.namespace }}/{{ owner.name }}'
    params: {namespace: '{{ owner.namespace }}', pod: '{{ owner.pod }}'}
"""
    test = """\
rule_files: [rules.yaml]
tests:
  - name: no owner given
    alerts:
      - labels: {alertname: KubePodCrashLooping, namespace: web, pod: api-1}
    expect:
      - {rule: pod-crash, target: deployment/web/api}
"""
    done = run_main("test", str(write(tmp_path, test, rules)))
    assert done.returncode == 1
    assert (
        "error: 'the owner of pod web/api-1 is found at run time: name it under the test''s owners:'"
        in done.stdout
    )
    named = test.replace(
        "    alerts:", "    owners:\n      web/api-1: {kind: Deployment, name: api}\n    alerts:"
    )
    assert run_main("test", str(write(tmp_path, named, rules))).returncode == 0


def test_steps_are_the_chains_handlers_in_order(tmp_path: Path) -> None:
    rules = """\
rules:
  - name: ws-runbook
    matchers: ['alertname="WsNotReady"']
    target: 'deployment/{{ labels.namespace }}/ws'
    steps:
      - handler: http.request
        params: {url: 'http://ws.{{ labels.namespace }}.svc:8080/admin/reconnect', method: POST}
        on_failure: next
      - page: {slack: '@here'}
  - name: one-step
    matchers: ['alertname="CacheStale"']
    handler: http.request
    target: 'cache/{{ labels.namespace }}'
    params: {url: 'http://runbooks.local/flush'}
"""
    test = """\
rule_files: [rules.yaml]
tests:
  - name: reconnect, then a person
    alerts:
      - labels: {alertname: WsNotReady, namespace: torghut}
      - labels: {alertname: CacheStale, namespace: torghut}
    expect:
      - {rule: ws-runbook, target: deployment/torghut/ws, steps: [http.request, page]}
      - {rule: one-step, target: cache/torghut, steps: [http.request]}
"""
    path = write(tmp_path, test, rules)
    done = run_main("test", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    wrong = run_main(
        "test", str(write(tmp_path, test.replace("[http.request, page]", "[kubernetes.bounce, page]"), rules))
    )
    assert wrong.returncode == 1
    assert (
        "        steps:\n    -   - kubernetes.bounce\n    +   - http.request\n        - page\n"
        in wrong.stdout
    )
