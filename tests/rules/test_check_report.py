"""`remediator check` reports every error of a file in one run (the schema's, the windows',
the handlers', the params', the templates', the matchers'), each at its line and in the
file's order, and names the nearest known key for an unknown one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import run_main

BROKEN = """\
defaults:
  cooldwon: 5m
rule: []
maintenance_windows:
  - name: nightly
    matchers: ['team=~"(unclosed"']
    start: "02:00"
    duration: 1h
  - name: weekly
    start: "25:00"
    duration: 1h
rules:
  - name: restart-web
    matchers: ['alertname="WebDown"']
    handler: kubernetes.rollout_restrat
    target: deployment/shop/web
    cooldown: 10
  - name: run-script
    matchers: ['alertname="DiskFull"']
    handler: command.run
    target: 'node/{{ labels.node }}'
    params:
      argv: ['{{ labels.script }}', '--clean']
  - name: bad-regex
    matchers: ['alertname=~"Disk(Full"']
    handler: kubernetes.bounce
    target: deployment/shop/ws
    params: {namespace: shop, deploymnet: ws}
    probe: {url: 'http://ws/health', expect_body: '(ok'}
  - name: bounce
    matchers: ['alertname="X"']
    handler: kubernetes.bounce
    target: deployment/../ws
    cooldwon: 5m
    params: {namespace: shop, deployment: ws}
  - name: bounce
    matchers: ['alertname="Y"']
    handler: kubernetes.bounce
    target: deployment/shop/ws
    params: {namespace: shop, deployment: ws}
"""

# One per stage, in the file's order: (what, the start of the line after "FILE: ").
EXPECTED = [
    ("schema: defaults", "defaults.cooldwon: unknown key; did you mean cooldown? (line 2)"),
    ("schema: the top level", "rule: unknown key; did you mean rules? (line 3)"),
    ("windows: a regex", "maintenance window 'nightly': matcher 'team=~\"(unclosed\"': invalid regex"),
    ("schema: a window", "maintenance_windows.1.start: '25:00' is not a time of day"),
    ("handler", "rule 'restart-web' (line 13): unknown handler 'kubernetes.rollout_restrat'"),
    (
        "schema: a duration",
        "rule 'restart-web' (line 13): cooldown: 10 has no unit: write 10s or 10m (line 17)",
    ),
    ("templated argv[0]", "rule 'run-script' (line 18): param 'argv' for command.run: argv[0]"),
    ("matchers: a regex", "rule 'bad-regex' (line 24): matcher 'alertname=~\"Disk(Full\"': invalid regex"),
    (
        "params",
        "rule 'bad-regex' (line 24): unknown params for kubernetes.bounce: deploymnet "
        "(did you mean deployment?)",
    ),
    (
        "schema: a probe's regex",
        "rule 'bad-regex' (line 24): probe.expect_body: '(ok' is not a valid regular",
    ),
    ("target", "rule 'bounce' (line 30): target"),
    (
        "schema: a rule's key",
        "rule 'bounce' (line 30): cooldwon: unknown key; did you mean cooldown? (line 34)",
    ),
    ("names", "rule 'bounce' (line 36): duplicate rule name"),
]


def test_one_check_lists_the_errors_of_every_stage(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    ran = run_main("check", str(path))
    assert ran.returncode == 1
    lines = [line.removeprefix(f"{path}: ") for line in ran.stderr.splitlines()]
    assert len(lines) == len(EXPECTED), ran.stderr
    for (stage, start), line in zip(EXPECTED, lines, strict=True):
        assert line.startswith(start), f"{stage}: {line}"


def test_an_unknown_key_far_from_any_gets_no_guess(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("defaults:\n  zzzz: 1\n", encoding="utf-8")
    ran = run_main("check", str(path))
    assert ran.returncode == 1
    assert ran.stderr == f"{path}: defaults.zzzz: unknown key (line 2)\n"


@pytest.mark.parametrize(
    ("where", "text", "expected"),
    [
        ("top level", "rulez: []\n", "rulez: unknown key; did you mean rules? (line 1)"),
        ("defaults", "defaults:\n  dryrun: true\n", "defaults.dryrun: unknown key; did you mean dry_run?"),
        (
            "a default approval",
            "defaults:\n  approval: {required: false, timout: 5m}\n",
            "defaults.approval.timout: unknown key; did you mean timeout?",
        ),
        (
            "a default brake",
            "defaults:\n  max_targets: {count: 3, whithin: 10m}\n",
            "defaults.max_targets.whithin: unknown key; did you mean within?",
        ),
        (
            "a window",
            "maintenance_windows:\n  - {name: w, start: '02:00', duration: 1h, timezone: UTC}\n",
            "maintenance_windows.0.timezone: unknown key; did you mean time_zone?",
        ),
        (
            "a rule's probe",
            "rules:\n  - name: a\n    matchers: ['x=\"1\"']\n    handler: http.request\n    target: t\n"
            "    params: {url: 'http://x/'}\n    probe: {url: 'http://x/', expect_staus: [200]}\n",
            "probe.expect_staus: unknown key; did you mean expect_status? (line 7)",
        ),
    ],
)
def test_an_unknown_key_names_the_nearest_known_one(
    where: str, text: str, expected: str, tmp_path: Path
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    ran = run_main("check", str(path))
    assert ran.returncode == 1
    assert expected in ran.stderr, f"{where}: {ran.stderr}"
