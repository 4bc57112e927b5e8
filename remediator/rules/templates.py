"""Sandboxed rendering of ``target`` and ``params`` templates; pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jinja2
import jinja2.meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from remediator.errors import TemplateError
from remediator.handling.escapes import Finalizer, url_escape

_ENV = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
_ENV.filters["urlquote"] = url_escape


def _env_with(finalize: Finalizer | None) -> jinja2.Environment:
    if finalize is None:
        return _ENV
    env = _ENV.overlay(finalize=finalize)
    return env


def compile_value(value: Any, finalize: Finalizer | None = None) -> Any:
    """Compile every string in a (nested) value; raises TemplateError on syntax errors."""
    if isinstance(value, str):
        if "{{" not in value and "{%" not in value:
            return value
        try:
            return _env_with(finalize).from_string(value)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"template {value!r}: {exc.message}") from exc
    if isinstance(value, list):
        return [compile_value(item, finalize) for item in value]
    if isinstance(value, dict):
        return {key: compile_value(item, finalize) for key, item in value.items()}
    return value


def uses_name(value: Any, name: str) -> bool:
    """Whether a template in the (nested) value, as written, reads the variable ``name``
    (e.g. ``owner``); a syntax error is left to ``compile_value`` to report."""
    if isinstance(value, str):
        if "{{" not in value and "{%" not in value:
            return False
        try:
            return name in jinja2.meta.find_undeclared_variables(_ENV.parse(value))
        except jinja2.TemplateSyntaxError:
            return False
    if isinstance(value, list):
        return any(uses_name(item, name) for item in value)
    if isinstance(value, dict):
        return any(uses_name(item, name) for item in value.values())
    return False


def render_value(compiled: Any, context: Mapping[str, Any]) -> Any:
    """Render what ``compile_value`` made; a missing label raises TemplateError."""
    if isinstance(compiled, jinja2.Template):
        try:
            return compiled.render(context)
        except jinja2.UndefinedError as exc:
            raise TemplateError(_undefined_reason(exc)) from exc
        except jinja2.TemplateError as exc:
            raise TemplateError(f"template failed: {exc}") from exc
    if isinstance(compiled, list):
        return [render_value(item, context) for item in compiled]
    if isinstance(compiled, dict):
        return {key: render_value(item, context) for key, item in compiled.items()}
    return compiled


def _undefined_reason(exc: jinja2.UndefinedError) -> str:
    text = str(exc.message or exc)
    # jinja says: "'dict object' has no attribute 'table'"
    if "has no attribute" in text:
        missing = text.rsplit("has no attribute", 1)[1].strip().strip("'")
        return f"the alert has no label or annotation {missing!r} used in the template"
    return f"template uses an undefined value: {text}"
