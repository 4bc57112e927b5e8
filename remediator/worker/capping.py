"""What an audit event stores is capped (``REMEDIATOR_AUDIT_EVENT_MAX_BYTES``).

A handler's plan and details can be large (a Job's manifest, a log): beyond the cap, each
keeps its first part, and ``details["capped"]`` records its full size in bytes (JSON), how
many items it had and the SHA-256 of its JSON, so the whole can still be recognised (the
outcome's log line carries the whole plan). Small details (numbers, flags, short text)
stay whole. The cap is shared: the plan gets half, the details the rest.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import orjson

from remediator.models import AuditEvent

CONTEXT_STEP = "context"  # the step of the context gathered before acting (gathering.py)
SMALL = 128  # a detail whose JSON is at most this many bytes is kept whole
MARK = 160  # room kept for the plan's last line, which says it was capped
CUT = "…"


def capped(event: AuditEvent, max_bytes: int) -> AuditEvent:
    """``event`` itself when its plan and details fit in ``max_bytes`` (their JSON), else a
    copy whose plan and details are cut to fit, with ``details["capped"]`` saying how. The
    context gathered before acting (the timeline's ``context`` step) has a budget of its
    own, ``max_bytes`` too (``capped_context``)."""
    event = capped_context(event, max_bytes)
    plan_bytes, details_bytes = _size(event.plan), _size(event.details)
    if plan_bytes + details_bytes <= max_bytes:
        return event
    marker: dict[str, Any] = {}
    budget_plan = max(max_bytes // 2, max_bytes - details_bytes)
    plan = event.plan
    if plan_bytes > budget_plan:
        marker["plan"] = {"bytes": plan_bytes, "items": len(plan), "sha256": _digest(plan)}
        plan = _cut_plan(plan, budget_plan, plan_bytes)
    room = max_bytes - _size(plan)  # for the details, the marker among them
    details = dict(event.details)
    if details_bytes + _size({"capped": marker}) > room:
        marker["details"] = {"bytes": details_bytes, "keys": len(details), "sha256": _digest(details)}
        details = _cut_details(details, room - _size({"capped": marker}) - 4)
    return event.model_copy(update={"plan": plan, "details": {**details, "capped": marker}})


def capped_context(event: AuditEvent, max_bytes: int) -> AuditEvent:
    """The event with its ``context`` step's entries within ``max_bytes`` (their JSON): each
    text cut to an equal share (a log keeps its end), its ``cut`` counting what was left out."""
    index = next((i for i, step in enumerate(event.timeline) if step.name == CONTEXT_STEP), None)
    if index is None:
        return event
    step = event.timeline[index]
    entries = list(step.data.get("entries") or [])
    if not entries or _size(entries) <= max_bytes:
        return event
    bare = [{**entry, "text": ""} for entry in entries]
    share = max(64, (max_bytes - _size(bare)) // len(entries))
    kept = [_cut_entry(entry, share) for entry in entries]
    timeline = list(event.timeline)
    timeline[index] = step.model_copy(update={"data": {**step.data, "entries": kept}})
    return event.model_copy(update={"timeline": timeline})


def _cut_entry(entry: dict[str, Any], budget: int) -> dict[str, Any]:
    text = str(entry.get("text") or "")
    if _size(text) <= budget:
        return entry
    if entry.get("tail"):
        kept = _prefix(text[::-1], budget - 8)[::-1]
        kept = CUT + kept
    else:
        kept = _prefix(text, budget - 8) + CUT
    return {**entry, "text": kept, "cut": int(entry.get("cut") or 0) + len(text) - len(kept) + 1}


def _cut_plan(plan: list[str], budget: int, full: int) -> list[str]:
    """The first lines that fit, the next one cut, and a last line saying so."""
    kept: list[str] = []
    room = budget - MARK - 2
    for line in plan:
        cost = _size(line) + 1
        if cost <= room:
            kept.append(line)
            room -= cost
            continue
        if room > 16:
            kept.append(_prefix(line, room - 8) + CUT)
        break
    left = len(plan) - len(kept)
    kept.append(f"[capped: {full} bytes in {len(plan)} lines, {left} not kept; see details.capped]")
    return kept


def _cut_details(details: dict[str, Any], budget: int) -> dict[str, Any]:
    """Small values whole, then the others in order: whole while they fit, the first that
    does not cut to a string of what is left, the rest left out (named in the marker)."""
    room = budget
    keep: dict[str, Any] = {}
    for key, value in details.items():
        cost = _size(key) + _size(value) + 2
        if cost <= SMALL and cost <= room:
            keep[key] = value
            room -= cost
    out: dict[str, Any] = {}
    for key, value in details.items():
        if key in keep:
            out[key] = value
            continue
        cost = _size(key) + _size(value) + 2
        if cost <= room:
            out[key] = value
            room -= cost
        elif room - _size(key) > 24:
            text = value if isinstance(value, str) else _json(value).decode()
            out[key] = _prefix(text, room - _size(key) - 12) + CUT
            room = 0
    return out


def _prefix(text: str, limit: int) -> str:
    """The longest start of ``text`` whose JSON is at most ``limit`` bytes."""
    low, high = 0, len(text)
    while low < high:  # JSON escapes make bytes and characters differ: search
        mid = (low + high + 1) // 2
        if _size(text[:mid]) <= limit:
            low = mid
        else:
            high = mid - 1
    return text[:low]


def _json(value: Any) -> bytes:
    """Compact JSON of ``value``; an integer beyond 64 bits (orjson refuses it) too."""
    try:
        return orjson.dumps(value, default=str)
    except TypeError:
        return json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":")).encode()


def _size(value: Any) -> int:
    return len(_json(value))


def _digest(value: Any) -> str:
    return hashlib.sha256(_json(value)).hexdigest()
