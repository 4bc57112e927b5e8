"""The generated reference is current: rules.schema.json and each generated table of
docs/reference/ (configuration, metrics, rule keys, handler params, CLI, HTTP routes) hold
what `make docs-gen` writes from the code today."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydantic import BaseModel

from handlers.scale import ScaleParams
from remediator.rules.schema import Policy, RuleSpec
from remediator.settings import Settings
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
