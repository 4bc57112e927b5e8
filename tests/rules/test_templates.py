import pytest

from remediator.errors import TemplateError
from remediator.handling.escapes import url_escape
from remediator.rules.templates import compile_value, render_value

CTX = {"labels": {"db": "torghut", "table": "ta_signals", "odd": "a/b c&d"}, "annotations": {}}


def test_renders_nested_values() -> None:
    compiled = compile_value(
        {
            "nodes": ["n1:9000"],
            "db": "{{ labels.db }}",
            "nested": {"t": "{{ labels.db }}.{{ labels.table }}"},
            "n": 3,
        }
    )
    assert render_value(compiled, CTX) == {
        "nodes": ["n1:9000"],
        "db": "torghut",
        "nested": {"t": "torghut.ta_signals"},
        "n": 3,
    }


def test_missing_label_names_it() -> None:
    compiled = compile_value("{{ labels.missing }}")
    with pytest.raises(TemplateError, match="'missing'"):
        render_value(compiled, CTX)


def test_syntax_error_at_compile_time() -> None:
    with pytest.raises(TemplateError, match="template"):
        compile_value("{{ labels.db ")


def test_sandbox_blocks_attribute_escapes() -> None:
    compiled = compile_value("{{ labels.__class__.__mro__ }}")
    with pytest.raises(TemplateError):
        render_value(compiled, CTX)


def test_sandbox_blocks_mutation() -> None:
    compiled = compile_value("{{ labels.update({'db': 'x'}) }}")
    with pytest.raises(TemplateError):
        render_value(compiled, CTX)


def test_url_fields_escape_every_substitution() -> None:
    compiled = compile_value("http://svc/{{ labels.odd }}?x={{ labels.db }}", url_escape)
    assert render_value(compiled, CTX) == "http://svc/a%2Fb%20c%26d?x=torghut"


def test_urlquote_filter() -> None:
    assert render_value(compile_value("{{ labels.odd | urlquote }}"), CTX) == "a%2Fb%20c%26d"
