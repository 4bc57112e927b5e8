"""Writes what the docs generate from the code (`make docs-gen`).

- ``rules.schema.json``: ``remediator schema`` (the JSON Schema of rules.yaml).
- In ``docs/reference/*.md``, the text between ``<!-- generated: NAME -->`` and
  ``<!-- end generated -->``: the configuration (``settings``, from Settings), the metrics
  (``metrics``, from the Metrics class), the rule keys (``rule-keys``, from the rule models
  and Policy), each handler's params (``handler:NAME``, from its params model), the CLI
  (``cli``, from the argument parser) and the HTTP routes (``api``, from the served OpenAPI
  document). The prose around them is written by hand.

    python scripts/gen_docs.py            # write what is stale
    python scripts/gen_docs.py --check    # name each stale file and exit 1; write nothing

tests/docs/test_generated.py fails while a file is stale, naming this command.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: the repository's packages

from remediator.api.openapi import document  # noqa: E402
from remediator.cli.main import build_parser  # noqa: E402
from remediator.durations import format_duration, parse_duration, parse_rule_duration  # noqa: E402
from remediator.handling.registry import Registry, default_registry, load_plugins  # noqa: E402
from remediator.metrics import Metrics  # noqa: E402
from remediator.rules.json_schema import DURATION, TEMPLATE, rules_schema, schema_text  # noqa: E402
from remediator.rules.schema import Policy, RuleSpec  # noqa: E402
from remediator.settings import PREFIX, Settings, secret_fields  # noqa: E402

COMMAND = "make docs-gen"
SCHEMA = "rules.schema.json"
REFERENCE = "docs/reference"
BLOCK = re.compile(r"(<!-- generated: (?P<name>[\w.:-]+) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S)
NOTE = f"<!-- written by `{COMMAND}` (scripts/gen_docs.py) from the code: edit the code, not this table -->\n"


def _cell(text: str) -> str:
    """A Markdown table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _durations(info: FieldInfo) -> bool:
    functions = (parse_duration, parse_rule_duration)
    return any(getattr(meta, "func", None) in functions for meta in info.metadata)


def _value(value: Any, info: FieldInfo) -> str:
    """A default as a user writes it."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, int | float) and _durations(info):
        return f"`{format_duration(value) if value else '0s'}`"
    if isinstance(value, tuple | list | dict):
        return f"`{json.dumps(list(value) if isinstance(value, tuple) else value)}`"
    if isinstance(value, BaseModel):
        return f"`{json.dumps(value.model_dump(mode='json'))}`"
    return f"`{value}`" if str(value) != "" else '`""`'


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    if info.default_factory is not None:
        return _value(info.default_factory(), info)  # type: ignore[call-arg]
    return _value(info.default, info)


# ---- configuration -------------------------------------------------------------------------
def settings_table() -> str:
    """One row per variable; neighbours that share their meaning share a row (HOST, PORT)."""
    secrets = set(secret_fields())
    rows: list[tuple[list[str], list[str], str]] = []
    for name, info in Settings.model_fields.items():
        meaning = _cell(info.description or "")
        if rows and rows[-1][2] == meaning:
            rows[-1][0].append(name)
            rows[-1][1].append(_default(info))
        else:
            rows.append(([name], [_default(info)], meaning))
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for names, defaults, meaning in rows:
        shown = defaults[0] if len(set(defaults)) == 1 else ", ".join(defaults)
        hidden = [f"`{n.upper()}`" for n in names if n in secrets]
        if hidden:
            meaning += (
                " (a secret, also as `_FILE`)"
                if len(names) == 1
                else f" ({', '.join(hidden)}: a secret, also as `_FILE`)"
            )
        lines.append(f"| {', '.join(f'`{n.upper()}`' for n in names)} | {shown} | {meaning} |")
    return "\n".join(lines) + f"\n\nEach variable is `{PREFIX}` and the name in the table.\n"


# ---- metrics -------------------------------------------------------------------------------
def metrics_table() -> str:
    from prometheus_client.metrics import MetricWrapperBase

    lines = ["| metric | type | labels | meaning |", "|---|---|---|---|"]
    found = [m for m in vars(Metrics()).values() if isinstance(m, MetricWrapperBase)]
    for metric in sorted(found, key=lambda m: m._name):
        kind = metric._type
        name = metric._name + ("_total" if kind == "counter" else "")
        labels = ", ".join(f"`{label}`" for label in metric._labelnames) or ""
        meaning = _cell(metric._documentation)
        buckets = getattr(metric, "_upper_bounds", None)
        if kind == "histogram" and buckets:
            shown = ", ".join(format_duration(b) for b in buckets if b != float("inf"))
            meaning += f" Buckets: {shown}."
        lines.append(f"| `{name}` | {kind} | {labels} | {meaning} |")
    return "\n".join(lines) + "\n"


# ---- rule keys -----------------------------------------------------------------------------
def rule_keys_table() -> str:
    policy = set(Policy.model_fields)
    lines = ["| key | default | in `defaults:` | meaning |", "|---|---|---|---|"]
    for name, info in RuleSpec.model_fields.items():
        if name in policy:
            continue
        lines.append(f"| `{name}` | {_default(info)} | no | {_cell(info.description or '')} |")
    for name, info in Policy.model_fields.items():
        lines.append(f"| `{name}` | {_default(info)} | yes | {_cell(info.description or '')} |")
    return "\n".join(lines) + "\n"


# ---- handlers ------------------------------------------------------------------------------
def _kind(schema: dict[str, Any]) -> str:
    """What a param takes, in a word or two, from its JSON Schema."""
    options = [s for s in schema.get("anyOf", [schema]) if s != TEMPLATE and s.get("type") != "null"]
    kinds = []
    for option in options:
        if option.get("pattern") == DURATION["pattern"]:
            kinds.append("duration")
        elif "enum" in option:
            kinds.append(" \\| ".join(f"`{v}`" for v in option["enum"]))
        elif "const" in option:
            kinds.append(f"`{option['const']}`")
        elif option.get("type") == "array":
            kinds.append(f"list of {_kind(option.get('items', {})) or 'values'}")
        elif option.get("type") == "object" or "$ref" in option:
            kinds.append("map")
        elif "anyOf" in option:
            kinds.append(_kind(option))
        elif "type" in option:
            kinds.append(str(option["type"]))
    return " or ".join(dict.fromkeys(kinds))


def handler_params(name: str) -> str:
    spec = shipped().get(name)
    assert spec is not None, f"no handler {name}"
    properties = rules_schema(shipped())["$defs"][f"params-{name}"].get("properties", {})
    lines = ["| param | takes | default | meaning |", "|---|---|---|---|"]
    own = set(inspect.get_annotations(spec.params))
    fields = sorted(spec.params.model_fields.items(), key=lambda item: item[0] not in own)  # shared ones last
    for field, info in fields:
        key = info.alias or field
        meaning = _cell(info.description or "")
        lines.append(f"| `{key}` | {_kind(properties.get(key, {}))} | {_default(info)} | {meaning} |")
    return "\n".join(lines) + "\n"


# ---- CLI -----------------------------------------------------------------------------------
def cli_reference() -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help or "" for choice in sub._choices_actions}
    out = ["| command | what it does |", "|---|---|"]
    out += [f"| [`{name}`](#remediator-{name}) | {_cell(helps.get(name, ''))} |" for name in sub.choices]
    for name, command in sub.choices.items():
        usage = " ".join(command.format_usage().removeprefix("usage: ").split())
        out += ["", f"### `remediator {name}` {{#remediator-{name}}}", "", _cell(helps.get(name, ""))]
        out += ["", "```", usage, "```"]
        rows = [_option(action) for action in command._actions if action.dest != "help"]
        if rows:
            out += ["", "| argument | meaning |", "|---|---|", *rows]
    return "\n".join(out) + "\n"


def _option(action: argparse.Action) -> str:
    metavar = action.metavar if isinstance(action.metavar, str) else None
    name = ", ".join(action.option_strings) or metavar or action.dest
    if action.option_strings and action.nargs != 0:
        name += f" {metavar or action.dest.upper()}"
    meaning = action.help or ""
    if action.choices:
        meaning += f" (one of {', '.join(map(str, action.choices))})"
    default = action.default
    if default not in (None, False, argparse.SUPPRESS) and action.nargs != 0:
        meaning += f" (default {default})"
    return f"| `{_cell(str(name))}` | {_cell(meaning.strip())} |"


# ---- HTTP API ------------------------------------------------------------------------------
def api_routes() -> str:
    secret = SecretStr("x" * 32)
    settings = Settings.model_construct(
        admin_token=secret, webhook_token=secret, webhook_username="am", webhook_password=secret
    )
    paths: dict[str, Any] = document(settings)["paths"]
    lines = ["| route | auth | what | answers |", "|---|---|---|---|"]
    for path, operations in paths.items():
        for method, op in operations.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            auth = sorted({name for need in op.get("security", []) for name in need})
            who = "admin" if "adminToken" in auth else "webhook" if auth else "none"
            what = _cell(op.get("summary", ""))
            if op.get("deprecated"):
                what = f"**deprecated**: {what}"
            codes = ", ".join(sorted(op["responses"]))
            lines.append(f"| `{method.upper()} {path}` | {who} | {what} | {codes} |")
    return "\n".join(lines) + "\n"


def shipped() -> Registry:
    """The handlers the `handlers` package ships: a test that registered its own handler in
    this process (tests/support/test_handlers.py) must not change the pages."""
    load_plugins(["handlers"])
    registry = Registry()
    for spec in default_registry:
        if type(spec.phases).__module__.partition(".")[0] == "handlers":
            registry.add(spec)
    return registry


def generators() -> dict[str, Callable[[], str]]:
    found: dict[str, Callable[[], str]] = {
        "settings": settings_table,
        "metrics": metrics_table,
        "rule-keys": rule_keys_table,
        "cli": cli_reference,
        "api": api_routes,
    }
    for spec in shipped():
        found[f"handler:{spec.name}"] = functools.partial(handler_params, spec.name)
    return found


def render(text: str, made: dict[str, Callable[[], str]], used: set[str]) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in made:
            raise SystemExit(f"gen_docs: no generator named {name!r} (known: {', '.join(made)})")
        used.add(name)
        return f"{match[1]}{NOTE}\n{made[name]()}\n{match[4]}"

    return BLOCK.sub(fill, text)


def outputs(root: Path = ROOT) -> Iterator[tuple[str, str]]:
    """(path, the text it should hold) of every generated file; each generator used once."""
    yield SCHEMA, schema_text(shipped())
    made, used = generators(), set[str]()
    for page in sorted((root / REFERENCE).glob("*.md")):
        text = page.read_text(encoding="utf-8")
        if BLOCK.search(text):
            yield page.relative_to(root).as_posix(), render(text, made, used)
    if missing := sorted(set(made) - used):
        raise SystemExit(f"gen_docs: no page in {REFERENCE} has a block for {', '.join(missing)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="name each stale file and exit 1; write nothing")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository (default: this one)")
    args = parser.parse_args(argv)
    stale = []
    for path, text in outputs(args.root):
        target = args.root / path
        if target.is_file() and target.read_text(encoding="utf-8") == text:
            continue
        stale.append(path)
        if not args.check:
            target.write_text(text, encoding="utf-8")
            print(f"gen_docs: wrote {path}")
    if args.check and stale:
        print(f"gen_docs: stale: {', '.join(stale)}: run `{COMMAND}`", file=sys.stderr)
        return 1
    if not stale:
        print("gen_docs: every generated file is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
