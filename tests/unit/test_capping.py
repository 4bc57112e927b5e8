"""The audit event's cap (worker/capping.py) holds for any plan and details: what is kept
fits, the marker says what the whole was, and an event that fits is left alone."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from remediator.models import AuditEvent, Outcome
from remediator.worker.capping import capped

TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=3000)
VALUES = st.one_of(st.integers(), st.booleans(), st.none(), TEXT, st.lists(TEXT, max_size=5))


def event(plan: list[str], details: dict[str, Any]) -> AuditEvent:
    return AuditEvent(
        event_id="e1",
        rule="r",
        received_at=0,
        finished_at=0,
        outcome=Outcome.DRY_RUN,
        plan=plan,
        details=details,
    )


def dumped(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # an integer beyond 64 bits
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def size(value: Any) -> int:
    return len(dumped(value))


@settings(max_examples=200, deadline=None)
@given(
    plan=st.lists(TEXT, max_size=12),
    details=st.dictionaries(st.text(max_size=20), VALUES, max_size=8),
    limit=st.integers(min_value=1024, max_value=8192),
)
def test_what_is_kept_fits_and_says_what_the_whole_was(
    plan: list[str], details: dict[str, Any], limit: int
) -> None:
    original = event(plan, details)
    kept = capped(original, limit)
    if size(plan) + size(details) <= limit:
        assert kept is original
        return
    assert size(kept.plan) + size(kept.details) <= limit, (size(kept.plan), size(kept.details))
    marker = kept.details["capped"]
    if "plan" in marker:
        assert marker["plan"] == {
            "bytes": size(plan),
            "items": len(plan),
            "sha256": hashlib.sha256(dumped(plan)).hexdigest(),
        }
        assert kept.plan[-1].startswith("[capped:")
    else:
        assert kept.plan == plan
    if "details" in marker:
        assert marker["details"]["bytes"] == size(details)
    else:
        assert {k: v for k, v in kept.details.items() if k != "capped"} == details
