"""The JSON Schema of ``rules.yaml`` (``remediator schema``, the committed ``rules.schema.json``).

Made from the same models ``check`` validates with (``RulesFile``, each handler's params
model), so editors complete and check what the service accepts. Each rule's ``params`` are
checked against its handler's model (``if handler is X then params is X's``). Written for an
editor, it is looser than ``check`` where a value is checked only once rendered or by code
(templates, regexes, cross-checks): ``check`` stays the judge.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, models_json_schema
from pydantic_core import core_schema

from remediator.durations import format_duration, parse_rule_duration
from remediator.handling.registry import Registry
from remediator.rules.schema import RulesFile

DIALECT = "https://json-schema.org/draft/2020-12/schema"
# A duration as rules.yaml writes it: a number and a unit, repeated (``1h30m``).
DURATION: dict[str, Any] = {
    "type": "string",
    "pattern": r"^\s*([0-9]+(\.[0-9]+)?(ms|s|m|h|d|w))+\s*$",
    "patternErrorMessage": "a duration with its unit: 30s, 15m, 1h30m (ms, s, m, h, d, w)",
}
# A value rendered per alert: any string with a Jinja expression or statement.
TEMPLATE: dict[str, Any] = {
    "type": "string",
    "pattern": r"\{[{%]",
    "patternErrorMessage": "a template, rendered for each alert ({{ labels.x }})",
}
_SCALARS = {"number", "integer", "boolean"}


class _RulesSchema(GenerateJsonSchema):
    """Pydantic's schema, with rules.yaml's durations as the strings they are written as."""

    def function_before_schema(self, schema: core_schema.BeforeValidatorFunctionSchema) -> JsonSchemaValue:
        if schema["function"].get("function") is parse_rule_duration:
            return dict(DURATION)
        return super().function_before_schema(schema)


def rules_schema(registry: Registry) -> dict[str, Any]:
    """The schema of a rules file whose rules use the handlers of ``registry``."""
    specs = list(registry)
    models: list[tuple[type[BaseModel], Any]] = [(RulesFile, "validation")]
    models += [(spec.params, "validation") for spec in specs]
    refs, document = models_json_schema(models, schema_generator=_RulesSchema)
    defs: dict[str, Any] = document.get("$defs", {})
    rule = defs["RuleSpec"]
    rule["properties"]["handler"] = {
        "enum": [spec.name for spec in specs],
        "description": "The handler that repairs the target (docs/reference/handlers.md).",
    }
    own = {"RulesFile", *_reachable(defs, defs["RulesFile"])}
    for spec in specs:  # one definition per handler's params, for rules and steps alike
        model = _templated(defs.pop(_name(refs[(spec.params, "validation")])))
        defs[f"params-{spec.name}"] = {**model, "additionalProperties": False}
        own.add(f"params-{spec.name}")
    checks = [_params_for(spec.name, defs[f"params-{spec.name}"]) for spec in specs]
    rule["allOf"] = checks
    rule["oneOf"] = [{"required": ["handler"]}, {"required": ["steps"]}]  # a rule runs one or the other
    if "StepSpec" in defs:  # each step of `steps:` is checked as a rule's handler and params are
        step = defs["StepSpec"]
        step["properties"]["handler"] = {
            **rule["properties"]["handler"],
            "description": "The step's handler.",
        }
        step["allOf"] = checks
    for name in set(defs) - own:  # the models nested in handler params
        defs[name] = _templated(defs[name])
    top = defs.pop("RulesFile")
    return {"$schema": DIALECT, "title": "remediator rules.yaml", **_tidied(top), "$defs": _tidied(defs)}


def schema_text(registry: Registry) -> str:
    """``rules_schema`` as ``remediator schema`` prints it and ``rules.schema.json`` holds it."""
    return json.dumps(rules_schema(registry), indent=2, ensure_ascii=False) + "\n"


def _name(ref: dict[str, Any]) -> str:
    return str(ref["$ref"]).rsplit("/", 1)[-1]


def _params_for(handler: str, params: dict[str, Any]) -> dict[str, Any]:
    """``if handler: X then params: X's model`` (required when the model has required fields)."""
    then: dict[str, Any] = {"properties": {"params": {"$ref": f"#/$defs/params-{handler}"}}}
    if params.get("required"):
        then["required"] = ["params"]
    return {"if": {"properties": {"handler": {"const": handler}}, "required": ["handler"]}, "then": then}


def _reachable(defs: dict[str, Any], schema: Any, seen: set[str] | None = None) -> set[str]:
    """The names of the ``$defs`` that ``schema`` refers to, directly or through others."""
    seen = set() if seen is None else seen
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and (name := ref.rsplit("/", 1)[-1]) not in seen and name in defs:
            seen.add(name)
            _reachable(defs, defs[name], seen)
        for value in schema.values():
            _reachable(defs, value, seen)
    elif isinstance(schema, list):
        for item in schema:
            _reachable(defs, item, seen)
    return seen


def _templated(schema: Any) -> Any:
    """``schema`` with a template allowed wherever it wants a number, an integer or a boolean
    (or a string of a given form): those are checked once rendered, per alert."""
    if isinstance(schema, list):
        return [_templated(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _templated(value) for key, value in schema.items() if key not in ("default", "examples")}
    if "default" in schema:
        out["default"] = copy.deepcopy(schema["default"])
    kind = schema.get("type")
    scalar = kind in _SCALARS or (kind == "string" and ("pattern" in schema or "format" in schema))
    if scalar or "enum" in schema or "const" in schema:
        description = out.pop("description", None)
        wrapped: dict[str, Any] = {"anyOf": [out, TEMPLATE]}
        if description:
            wrapped["description"] = description
        return wrapped
    return out


def _tidied(schema: Any) -> Any:
    """Without pydantic's ``title`` on every property (the key says it); a duration without
    the number bounds pydantic copies from its float (``gt`` is no JSON Schema keyword), its
    default written as rules.yaml writes it."""
    if isinstance(schema, list):
        return [_tidied(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {
        key: (_tidied(value) if key not in ("default", "const", "enum", "examples") else value)
        for key, value in schema.items()
        if not (key == "title" and isinstance(value, str))
    }
    if isinstance(out.get("default"), dict) and out["default"]:  # the defaults' defaults: each has its own
        del out["default"]
    if out.get("pattern") == DURATION["pattern"]:
        for key in ("gt", "ge", "lt", "le"):
            out.pop(key, None)
        if isinstance(out.get("default"), int | float):
            out["default"] = format_duration(out["default"]) if out["default"] else "0s"
    return out
