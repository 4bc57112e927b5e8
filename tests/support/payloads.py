"""Alertmanager v4 webhook payloads, shaped exactly as Alertmanager 0.25+ sends them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from remediator.models import label_fingerprint

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "alertmanager"


def alert(
    alertname: str = "TestAlert",
    status: str = "firing",
    starts_at: str = "2026-11-28T10:00:00.000Z",
    annotations: dict[str, str] | None = None,
    **labels: str,
) -> dict[str, Any]:
    all_labels = {"alertname": alertname, **labels}
    return {
        "status": status,
        "labels": all_labels,
        "annotations": annotations or {"summary": f"{alertname} is {status}"},
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-28T10:05:00.000Z",
        "generatorURL": "http://prometheus.test:9090/graph?g0.expr=up",
        "fingerprint": label_fingerprint(all_labels),
    }


def payload(*alerts: dict[str, Any], status: str | None = None) -> dict[str, Any]:
    status = status or ("firing" if any(a["status"] == "firing" for a in alerts) else "resolved")
    return {
        "receiver": "remediator",
        "status": status,
        "alerts": list(alerts),
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.test:9093",
        "version": "4",
        "groupKey": '{}:{alertname="TestAlert"}',
        "truncatedAlerts": 0,
        "notification_reason": "new alerts",  # unknown fields must be ignored
    }


def example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return data
