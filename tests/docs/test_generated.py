"""The generated reference is current: rules.schema.json and each generated table of
docs/reference/ (configuration, metrics, rule keys, handler params, CLI, HTTP routes) hold
what `make docs-gen` writes from the code today."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import Counter
from pydantic import BaseModel

from handlers.scale import ScaleParams
from remediator.api.openapi import document
from remediator.cli.main import build_parser
from remediator.metrics import Metrics
from remediator.rules.schema import Policy, RuleSpec
from remediator.settings import Settings
from scripts import gen_docs
from scripts.gen_docs import BLOCK, COMMAND, main, outputs
from tests.support.procs import ROOT

GENERATED = dict(outputs())


@pytest.mark.parametrize("path", sorted(GENERATED))
def test_the_generated_file_is_current(path: str) -> None:
    text = (ROOT / path).read_text(encoding="utf-8")
    assert text == GENERATED[path], f"{path} is stale: run `{COMMAND}` and commit the result"


def test_each_reference_is_generated_where_the_issue_says() -> None:
    """The pages keep their blocks: a block deleted by hand would stop its freshness check."""
    names = {path: {m["name"] for m in BLOCK.finditer(GENERATED[path])} for path in GENERATED}
    assert "settings" in names["docs/reference/configuration.md"]
    assert "metrics" in names["docs/reference/metrics.md"]
    assert "rule-keys" in names["docs/reference/rules.md"]
    assert "cli" in names["docs/reference/cli.md"]
    assert "api" in names["docs/reference/api.md"]
    assert {"handler:kubernetes.scale", "handler:command.run"} <= names["docs/reference/handlers.md"]


@pytest.mark.parametrize(
    ("page", "model", "field"),
    [
        ("docs/reference/configuration.md", Settings, "workers"),
        ("docs/reference/rules.md", Policy, "cooldown"),
        ("docs/reference/handlers.md", ScaleParams, "replicas"),
    ],
)
def test_a_changed_source_makes_its_page_stale(
    page: str, model: type[BaseModel], field: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A meaning changed in the code and not regenerated fails the freshness test above."""
    monkeypatch.setattr(model.model_fields[field], "description", "changed in the code")
    if model is Policy:  # RuleSpec copies the policy's fields
        monkeypatch.setattr(RuleSpec.model_fields[field], "description", "changed in the code")
    assert dict(outputs())[page] != (ROOT / page).read_text(encoding="utf-8")


def _parser_with_an_option() -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub.choices["check"].add_argument("--new-flag", help="added in the code")
    return parser


def _document_with_a_route(settings: Settings) -> dict[str, Any]:
    served = document(settings)
    return {**served, "paths": {**served["paths"], "/new": {"get": {"summary": "new", "responses": {}}}}}


class _MoreMetrics(Metrics):
    def __init__(self) -> None:
        super().__init__()
        self.added = Counter("remediator_added_total", "Added in the code.", registry=self.registry)


@pytest.mark.parametrize(
    ("page", "name", "changed"),
    [
        ("docs/reference/cli.md", "build_parser", _parser_with_an_option),
        ("docs/reference/api.md", "document", _document_with_a_route),
        ("docs/reference/metrics.md", "Metrics", _MoreMetrics),
    ],
)
def test_a_changed_parser_document_or_metric_makes_its_page_stale(
    page: str, name: str, changed: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gen_docs, name, changed)
    assert dict(outputs())[page] != (ROOT / page).read_text(encoding="utf-8")


def test_check_names_each_stale_file_and_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`scripts/gen_docs.py --check` on a copy whose metrics table was edited by hand."""
    shutil.copytree(ROOT / "docs" / "reference", tmp_path / "docs" / "reference")
    shutil.copy(ROOT / "rules.schema.json", tmp_path)
    assert main(["--check", "--root", str(tmp_path)]) == 0
    page = tmp_path / "docs" / "reference" / "metrics.md"
    page.write_text(page.read_text(encoding="utf-8").replace("| counter |", "| gauge |", 1), encoding="utf-8")
    capsys.readouterr()
    assert main(["--check", "--root", str(tmp_path)]) == 1
    assert capsys.readouterr().err == ("gen_docs: stale: docs/reference/metrics.md: run `make docs-gen`\n")
