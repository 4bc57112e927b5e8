"""The rule policy is one model: a field added to ``Policy`` is settable in ``defaults:`` and
per rule, shown by the admin API and ``remediator rules``, and documented, with no other edit."""

from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pytest
import yaml
from pydantic.fields import FieldInfo

from remediator.api.admin import rule_info
from remediator.api.schemas import RuleInfo, RulesInfo
from remediator.cli.control_reports import rules_text
from remediator.rules.ruleset import Policy, Rule, RuleSet, parse_rules
from remediator.rules.schema import ApprovalSpec, BrakeSpec
from tests.support.handlers import make_registry

RULES_PAGE = Path(__file__).resolve().parents[2] / "docs" / "reference" / "rules.md"
SPECIAL = {  # values that must mean something
    "escalate": ("<!here>", "<!here>"),
    "approval": (
        {"timeout": "10m", "approvers": ["U0ALICE", "S0ONCALL"]},
        ApprovalSpec.model_validate({"timeout": "10m", "approvers": ["U0ALICE", "S0ONCALL"]}),
    ),
    "max_targets": ({"count": 20, "within": "10m"}, BrakeSpec.model_validate({"count": 20, "within": "10m"})),
}


def example(name: str, info: FieldInfo) -> tuple[Any, Any]:
    """A value other than the default: as written in rules.yaml, and as the policy holds it."""
    default = info.default
    if name in SPECIAL:
        return SPECIAL[name]
    if isinstance(default, bool):
        return not default, not default
    if isinstance(default, float):  # a duration
        return "7m", 420.0
    if isinstance(default, int):
        return default + 4, default + 4
    if get_origin(info.annotation) is Literal:
        other = next(a for a in get_args(info.annotation) if a != default)
        return other, other
    if isinstance(default, tuple):
        return ["zone"], ("zone",)
    if default is None or isinstance(default, str):
        return "zone-a", "zone-a"
    raise AssertionError(f"add an example for the new policy field {name!r} to SPECIAL")


EXAMPLES = {name: example(name, info) for name, info in Policy.model_fields.items()}
WRITTEN = {name: written for name, (written, _) in EXAMPLES.items()}
HELD = {name: held for name, (_, held) in EXAMPLES.items()}
RULE = {
    "name": "a",
    "matchers": ['alertname="A"'],
    "handler": "test.probe",
    "target": "t",
    "inhibited_by": ['alertname="B"'],
}


def parse(document: dict[str, Any]) -> RuleSet:
    return parse_rules(yaml.safe_dump(document).encode(), "rules.yaml", make_registry())


def test_the_examples_differ_from_the_defaults() -> None:
    assert all(getattr(Policy(), name) != held for name, held in HELD.items())


@pytest.mark.parametrize("where", ["defaults", "rule"])
def test_every_policy_field_can_be_set_in_defaults_and_per_rule(where: str) -> None:
    document = (
        {"defaults": WRITTEN, "rules": [RULE]} if where == "defaults" else {"rules": [{**RULE, **WRITTEN}]}
    )
    rules = parse(document)
    (rule,) = rules.rules
    assert rule.policy == Policy.model_construct(**HELD)
    assert rules.defaults == (Policy.model_construct(**HELD) if where == "defaults" else Policy())
    assert {name: getattr(rule.policy, name) for name in HELD} == HELD


def test_a_rule_value_wins_over_defaults_and_null_keeps_them() -> None:
    rules = parse(
        {
            "defaults": WRITTEN,
            "rules": [
                {**RULE, "timeout": "1m", "cooldown": None},
                {**RULE, "name": "b", **dict.fromkeys(WRITTEN)},
            ],
        }
    )
    first, second = rules.rules
    assert first.policy == Policy.model_construct(**{**HELD, "timeout": 60.0})
    assert second.policy == rules.defaults


def shown(rules: RuleSet) -> dict[str, Any]:
    info = RulesInfo(
        loaded=True,
        path="rules.yaml",
        resolved_path="rules.yaml",
        poll_interval_seconds=5.0,
        count=len(rules),
        hash=rules.hash,
        defaults=rules.defaults,
        rules=[rule_info(r) for r in rules.rules],
    )
    return info.model_dump(mode="json")


def test_every_policy_field_is_in_the_rules_api() -> None:
    rules = parse({"rules": [{**RULE, **WRITTEN}]})
    rule: Rule = rules.rules[0]
    info = shown(rules)
    policy = rule.policy.model_dump(mode="json")
    assert {k: v for k, v in info["rules"][0].items() if k in policy} == policy
    assert info["defaults"] == Policy().model_dump(mode="json")
    properties = RuleInfo.model_json_schema(mode="serialization")["properties"]
    assert set(Policy.model_fields) <= set(properties)


def test_every_policy_field_is_in_remediator_rules() -> None:
    defaults_set = rules_text(shown(parse({"defaults": WRITTEN, "rules": [RULE]})))
    head = defaults_set.split("\n\n")[0]
    assert all(f" {name} " in head.replace("\n", " ") for name in Policy.model_fields), head
    rule_set = rules_text(shown(parse({"rules": [{**RULE, **WRITTEN}]})))
    row = rule_set.splitlines()[-1]
    columns = {"cooldown": "7m", "dry_run": "yes (rule)"}  # the fields with their own column
    for name in Policy.model_fields:
        assert columns.get(name, f"{name} ") in row, (name, row)


def test_every_policy_field_is_documented() -> None:
    reference = RULES_PAGE.read_text(encoding="utf-8")
    assert all(f"`{name}`" in reference for name in Policy.model_fields)
