"""The JSON Schema of rules.yaml (`remediator schema`, rules.schema.json): it accepts every
shipped and documented rules file, refuses what `check` refuses for its shape, lets a template
stand where a param wants a number or a boolean, and the committed file is the current one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

import handlers  # noqa: F401  (registers the built-in handlers)
from remediator.errors import RulesError
from remediator.handling.registry import default_registry
from remediator.rules.json_schema import rules_schema, schema_text
from remediator.rules.ruleset import parse_rules
from tests.docs.test_pages import documented_rules
from tests.support.cli import run_main
from tests.support.procs import ROOT

SCHEMA_FILE = ROOT / "rules.schema.json"
SHIPPED = [ROOT / "rules.yaml", *sorted((ROOT / "deploy" / "overlays").glob("*/rules.yaml"))]
HEADER = "# yaml-language-server: $schema="


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = rules_schema(default_registry)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def refusals(validator: jsonschema.protocols.Validator, document: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_the_committed_schema_is_what_remediator_schema_prints() -> None:
    ran = run_main("schema")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == schema_text(default_registry)
    assert SCHEMA_FILE.read_text(encoding="utf-8") == ran.stdout, (
        "rules.schema.json is stale: run `make docs-gen` and commit it"
    )


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_each_shipped_rules_file_names_the_schema_and_passes_it(
    path: Path, validator: jsonschema.protocols.Validator
) -> None:
    text = path.read_text(encoding="utf-8")
    first = text.splitlines()[0]
    assert first.startswith(HEADER), f"{path} does not start with {HEADER}..."
    assert (path.parent / first.removeprefix(HEADER)).resolve() == SCHEMA_FILE
    assert refusals(validator, yaml.safe_load(text)) == []


def test_every_rules_file_on_a_docs_page_passes_the_schema(validator: jsonschema.protocols.Validator) -> None:
    found = documented_rules()
    assert len(found) >= 5
    refused = {where: problems for where, doc in found if (problems := refusals(validator, doc))}
    assert refused == {}


RULE: dict[str, Any] = {
    "name": "bounce-ws",
    "matchers": ['alertname="WsDown"'],
    "handler": "kubernetes.bounce",
    "target": "deployment/torghut/ws",
    "params": {"namespace": "torghut", "deployment": "ws"},
}


def _with(**changes: Any) -> dict[str, Any]:
    rule = {**RULE, **changes}
    return {"rules": [{k: v for k, v in rule.items() if v is not None}]}


SCALE = {"namespace": "shop", "name": "web", "replicas": 3, "min": 1, "max": 5}
# Files `check` refuses for their shape; the schema must refuse each too.
REFUSED = {
    "unknown top-level key": {"rule": [], "rules": []},
    "unknown rule key": _with(cooldwon="5m"),
    "no matchers": _with(matchers=None),
    "empty matchers": _with(matchers=[]),
    "no handler": _with(handler=None),
    "unknown handler": _with(handler="kubernetes.bunce"),
    "unknown param": _with(params={**RULE["params"], "namespcae": "x"}),
    "missing param": _with(params={"namespace": "torghut"}),
    "param of the wrong type": _with(handler="kubernetes.scale", params={**SCALE, "replicas": "three"}),
    "duration without unit": _with(cooldown=15),
    "param duration without unit": _with(params={**RULE["params"], "poll_interval": 2}),
    "unknown on_resolved": _with(on_resolved="always"),
    "unknown defaults key": {"defaults": {"cooldwon": "5m"}, "rules": []},
    "rules not a list": {"rules": {"name": "x"}},
    "window without start": {"maintenance_windows": [{"name": "nightly", "duration": "1h"}]},
    "approval not a mapping": _with(approval="yes"),
    "probe without url": _with(probe={"method": "GET"}),
    "both handler and steps": _with(steps=[{"handler": "kubernetes.bounce", "params": RULE["params"]}]),
    "a step's unknown param": _with(
        handler=None, params=None, steps=[{"handler": "kubernetes.bounce", "params": {"namespcae": "x"}}]
    ),
    "a step's unknown handler": _with(
        handler=None, params=None, steps=[{"handler": "kubernetes.bunce", "params": RULE["params"]}]
    ),
}


@pytest.mark.parametrize("document", REFUSED.values(), ids=list(REFUSED))
def test_the_schema_refuses_what_check_refuses(
    document: dict[str, Any], validator: jsonschema.protocols.Validator
) -> None:
    with pytest.raises(RulesError):
        parse_rules(yaml.safe_dump(document).encode(), "rules.yaml", default_registry)
    assert refusals(validator, document), "the schema accepts it"


def test_a_chain_of_steps_is_accepted(validator: jsonschema.protocols.Validator) -> None:
    steps = [
        {"handler": "kubernetes.bounce", "params": RULE["params"], "on_failure": "next"},
        {"page": {"slack": "@here"}},
    ]
    document = _with(handler=None, params=None, steps=steps)
    parse_rules(yaml.safe_dump(document).encode(), "rules.yaml", default_registry)  # check accepts it
    assert refusals(validator, document) == []


def test_a_template_stands_where_a_param_wants_a_number_or_a_boolean(
    validator: jsonschema.protocols.Validator,
) -> None:
    params = {**SCALE, "replicas": "{{ labels.replicas }}", "max": "{{ labels.max }}"}
    document = _with(handler="kubernetes.scale", params=params)
    parse_rules(yaml.safe_dump(document).encode(), "rules.yaml", default_registry)  # check accepts it
    assert refusals(validator, document) == []
    untemplated = _with(handler="kubernetes.scale", params={**params, "replicas": "many"})
    assert refusals(validator, untemplated)
    flag = _with(
        handler="kubernetes.delete_pod", params={"namespace": "a", "pod": "b", "allow_bare": "{{ x }}"}
    )
    assert refusals(validator, flag) == []
