"""A rules file's first stage: YAML, then the schema, each part validated on its own.

A rule or window that breaks the schema is reported and left out, and the rest go on to the
later checks (handlers, templates, matchers), so that one ``check`` lists every error of the
file. Each error is placed at its line; an unknown key names the nearest known one.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from remediator.errors import RulesError
from remediator.rules.documents import Document, load_document
from remediator.rules.rule import describe_error
from remediator.rules.schema import (
    ApprovalSpec,
    BrakeSpec,
    MaintenanceWindowSpec,
    Policy,
    ProbeSpec,
    ResolveSpec,
    RulesFile,
    RuleSpec,
)

Path = tuple[str | int, ...]
# The model whose keys an unknown key is compared with, by where it was written.
_NESTED: dict[str, type[BaseModel]] = {
    "probe": ProbeSpec,
    "resolve": ResolveSpec,
    "approval": ApprovalSpec,
    "max_targets": BrakeSpec,
}


@dataclass(frozen=True)
class ParsedFile:
    """The valid parts of a rules file, where each rule was written, and the schema's errors."""

    file: RulesFile
    doc: Document
    positions: tuple[int, ...]  # the file's index of each rule of ``file.rules``
    errors: list[str] = field(default_factory=list)


def read_rules_file(data: bytes, source: str) -> ParsedFile:
    """Parse and validate the schema, part by part; RulesError only when nothing can be read."""
    try:
        doc = load_document(data, source)
    except yaml.YAMLError as exc:
        raise RulesError(source, [f"invalid YAML: {exc}"]) from exc
    document = {} if doc.data is None else doc.data
    if not isinstance(document, dict):
        raise RulesError(source, ["the top level must be a mapping with 'defaults' and 'rules'"])
    errors: list[str] = []
    top = {k: v for k, v in document.items() if k not in ("rules", "maintenance_windows")}
    broken = _validated(RulesFile, top, (), doc, errors)
    kept_top = {k: v for k, v in top.items() if k in RulesFile.model_fields and k not in broken}
    windows = _items(document, "maintenance_windows", MaintenanceWindowSpec, doc, errors)
    rules = _items(document, "rules", RuleSpec, doc, errors)
    try:
        parsed = RulesFile.model_validate(
            {**kept_top, "maintenance_windows": [w for _, w in windows], "rules": [r for _, r in rules]}
        )
    except ValidationError as exc:  # a window name written twice
        errors += explain(exc, doc)
        parsed = RulesFile.model_validate({**kept_top, "rules": [r for _, r in rules]})
    return ParsedFile(parsed, doc, tuple(i for i, _ in rules), errors)


def _items(
    document: dict[str, Any], key: str, model: type[BaseModel], doc: Document, errors: list[str]
) -> list[tuple[int, Any]]:
    """The valid entries of the list under ``key``, each with its index in the file."""
    if key not in document:
        return []
    value = document[key]
    if not isinstance(value, list):
        errors.append(placed(doc, f"{key}: Input should be a valid list", (key,)))
        return []
    kept = []
    for index, item in enumerate(value):
        try:
            kept.append((index, model.model_validate(item)))
        except ValidationError as exc:
            errors += explain(exc, doc, (key, index))
            if (rest := _without_broken_keys(model, item, exc)) is not None:
                kept.append((index, rest))  # its other keys still go through the later checks
    return kept


def _without_broken_keys(model: type[BaseModel], item: Any, exc: ValidationError) -> BaseModel | None:
    """``item`` without the optional keys that broke the schema, if the rest is valid: its
    handler, params and matchers are checked too, and the file fails anyway."""
    if not isinstance(item, dict):
        return None
    broken = {err["loc"][0] for err in exc.errors() if err["loc"]}
    required = {name for name, info in model.model_fields.items() if info.is_required()}
    if broken & required:
        return None
    try:
        return model.model_validate({k: v for k, v in item.items() if k not in broken})
    except ValidationError:
        return None


def _validated(model: type[BaseModel], value: Any, at: Path, doc: Document, errors: list[str]) -> set[str]:
    """Validate ``value``; report its errors; return the top-level keys that failed."""
    try:
        model.model_validate(value)
    except ValidationError as exc:
        errors += explain(exc, doc, at)
        return {str(err["loc"][0]) for err in exc.errors() if err["loc"]}
    return set()


def explain(exc: ValidationError, doc: Document, at: Path = ()) -> list[str]:
    """One line per schema error, at its line; ``at``: where the validated value sits."""
    out = []
    found = doc.data.get("rules") if isinstance(doc.data, dict) else None
    rules: list[Any] = found if isinstance(found, list) else []
    for err in exc.errors():
        loc = (*at, *err["loc"])
        message = describe_error(err)
        if err["type"] == "extra_forbidden" and (hint := suggestion(loc)):
            message += f"; {hint}"
        if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
            index = loc[1]
            item = rules[index] if index < len(rules) else None
            name = item.get("name", f"#{index + 1}") if isinstance(item, dict) else f"#{index + 1}"
            where = ".".join(str(p) for p in loc[2:]) or "rule"
            out.append(placed(doc, f"{where}: {message}", loc, (index, str(name))))
        else:
            out.append(placed(doc, f"{'.'.join(str(p) for p in loc)}: {message}", loc))
    return out


def suggestion(loc: Sequence[str | int]) -> str | None:
    """``did you mean cooldown?`` for the unknown key at ``loc``, if a known one is close."""
    model = _model_at(loc[:-1])
    if model is None or not isinstance(loc[-1], str):
        return None
    return nearest(loc[-1], list(model.model_fields))


def nearest(key: str, known: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f"did you mean {close[0]}?" if close else None


def _model_at(loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model of the mapping at ``loc`` (the path of an unknown key, without the key)."""
    if not loc:
        return RulesFile
    head, rest = loc[0], loc[1:]
    if head == "defaults":
        return Policy if not rest else _NESTED.get(str(rest[0])) if len(rest) == 1 else None
    if head == "maintenance_windows":
        return MaintenanceWindowSpec if len(rest) == 1 else None
    if head == "rules" and rest and isinstance(rest[0], int):
        return RuleSpec if len(rest) == 1 else _NESTED.get(str(rest[1])) if len(rest) == 2 else None
    return None


def placed(doc: Document, message: str, path: Path, rule: tuple[int, str] | None = None) -> str:
    """``rule 'x' (line 9): message (line 12)``: where the rule starts, where the key is."""
    line = doc.line(path)
    if rule is None:
        return f"{message} (line {line})" if line else message
    index, name = rule
    start = doc.line(("rules", index))
    text = f"rule {name!r}" + (f" (line {start})" if start else "") + f": {message}"
    return text if line in (None, start) else f"{text} (line {line})"
