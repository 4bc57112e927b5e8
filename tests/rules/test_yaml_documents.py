"""One YAML loader for every file the service reads: a key written twice is an error naming both lines."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from remediator.api.auth import load_credentials
from remediator.errors import RulesError
from remediator.rules.documents import DuplicateKeyError, load_document, load_yaml
from remediator.rules.ruleset import parse_rules
from remediator.settings import Settings, SettingsError
from tests.support.handlers import make_registry

TOKEN_A = "alice-token-0123456789"
TOKEN_B = "alice-token-9876543210"


def test_a_key_written_twice_names_both_lines() -> None:
    with pytest.raises(DuplicateKeyError) as caught:
        load_document(b"a: 1\nb:\n  c: 2\n  d: 3\n  c: 4\n", "x.yaml")
    assert (caught.value.key, caught.value.first_line, caught.value.line) == ("c", 3, 5)
    assert "'c'" in str(caught.value) and "line 3" in str(caught.value) and "line 5" in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\nb: 2\n",
        "base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  x: 3\n",  # a merge key's entries may be overridden
        "- {a: 1}\n- {a: 2}\n",  # one key in two mappings is no duplicate
    ],
)
def test_distinct_keys_and_merge_overrides_are_fine(text: str) -> None:
    assert load_yaml(text.encode(), "x.yaml") == yaml.safe_load(text)


def test_keys_that_mean_the_same_value_are_duplicates() -> None:
    with pytest.raises(DuplicateKeyError):  # yes and true are the same boolean key
        load_yaml(b"yes: 1\ntrue: 2\n", "x.yaml")


def test_a_rule_key_written_twice_is_an_error_naming_both_lines() -> None:
    text = (
        "rules:\n"
        "  - name: probe\n"
        "    matchers: ['alertname=\"Probe\"']\n"
        "    handler: test.probe\n"
        "    cooldown: 10m\n"
        "    target: x\n"
        "    cooldown: 1m\n"
    )
    with pytest.raises(RulesError) as caught:
        parse_rules(text.encode(), "rules.yaml", make_registry())
    (problem,) = caught.value.problems
    assert "'cooldown'" in problem and "line 5" in problem and "line 7" in problem, problem


def test_a_tokens_file_with_a_name_twice_is_refused_naming_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(f'alice: "{TOKEN_A}"\nbob: "bob-token-0123456789"\nalice: "{TOKEN_B}"\n')
    with pytest.raises(SettingsError) as caught:
        load_credentials(Settings(rules=tmp_path / "rules.yaml", admin_tokens_file=path))
    (problem,) = caught.value.problems
    assert "REMEDIATOR_ADMIN_TOKENS_FILE" in problem and "lines 1 and 3" in problem, problem
    assert TOKEN_A not in problem and TOKEN_B not in problem
