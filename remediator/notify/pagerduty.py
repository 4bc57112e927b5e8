"""PagerDuty escalation: an incident when a circuit opens, resolved when it closes.

Events API v2 (``POST {REMEDIATOR_PAGERDUTY_API_URL}/v2/enqueue``):
- a ``brake_opened`` notice (a rule's blast-radius brake) -> ``trigger``, one incident per
  rule (``remediator/brake/<rule>``); ``brake_released`` with nothing left held ->
  ``resolve``;
- an ``escalated`` notice (a circuit opened) -> ``trigger``, with one ``dedup_key`` per
  (rule, target): a second escalation of the same incident updates it, never pages twice;
- a succeeded run on that target (its circuit closes) or the alert's resolution ->
  ``resolve`` with the same key. A resolve for a key with no open incident changes nothing
  at PagerDuty; this process sends one per key until the next trigger, not one per success.

Delivery as Slack's (``slack/client.py``): ``send`` appends to a bounded queue and
returns; one sender task posts in order; 429 (its ``Retry-After`` honoured), 5xx,
connection errors and timeouts are retried with backoff, a bounded number of times; any
other 4xx is final. A failure is counted and logged once, and the sender moves on.
Nothing here blocks or fails a remediation. The routing key is never logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import structlog

from remediator.durations import format_duration
from remediator.metrics import Metrics
from remediator.models import SOURCE_NAMES
from remediator.notify.notice import Notice, replay_command
from remediator.notify.outbox import Outbox
from remediator.settings import Settings

log = structlog.get_logger("remediator.notify.pagerduty")

Action = Literal["trigger", "resolve"]
SEVERITIES = ("critical", "error", "warning", "info")
MAX_SUMMARY = 1024  # the Events API's limit
MAX_DEDUP_KEY = 255
MAX_ERROR = 2000


@dataclass(frozen=True)
class PagerDutyEvent:
    """One event to send; ``body`` lacks the routing key, added only when posting."""

    action: Action
    dedup_key: str
    body: dict[str, Any]
    event_id: str = ""


class _Retry(Exception):
    def __init__(self, message: str, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class _Final(Exception):
    pass


class PagerDutyNotifier:
    """Sends ``trigger`` and ``resolve`` events; every other notice is ignored."""

    def __init__(
        self,
        *,
        settings: Settings,
        session: aiohttp.ClientSession,
        metrics: Metrics,
        queue_size: int = 1000,
        close_timeout: float = 5.0,
        event_timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_retry_after: float = 30.0,
    ) -> None:
        if settings.pagerduty_routing_key is None:
            raise ValueError("PagerDutyNotifier needs REMEDIATOR_PAGERDUTY_ROUTING_KEY")
        self._key = settings.pagerduty_routing_key.get_secret_value()
        self._url = settings.pagerduty_api_url.rstrip("/") + "/v2/enqueue"
        self._session, self._metrics = session, metrics
        self._queue_size = queue_size
        self._timeout = aiohttp.ClientTimeout(total=event_timeout)
        self._retries, self._backoff, self._max_retry_after = retries, backoff, max_retry_after
        self._outbox = Outbox[PagerDutyEvent](
            name="pagerduty-sender",
            deliver=self._deliver,
            drop=self._drop,
            queue_size=queue_size,
            close_timeout=close_timeout,
        )
        self._not_before = 0.0  # monotonic time before which PagerDuty asked us not to post
        self._last: OrderedDict[str, Action] = OrderedDict()  # dedup key -> last action queued

    # ---- the Notifier protocol ------------------------------------------------------
    async def start(self) -> None:
        if not self._outbox.started:
            self._outbox.start()
            log.info("pagerduty.started", url=self._url)

    def send(self, notice: Notice) -> None:
        """Queue the event ``notice`` calls for (if any) and return at once; never raises."""
        try:
            event = event_for(notice)
            if event is not None and self._wanted(event):
                self._outbox.put(event)
        except Exception as exc:  # a notifier must never break the pipeline
            log.error("pagerduty.enqueue_failed", error=self._redact(repr(exc)))

    async def close(self) -> None:
        """Deliver what is queued for up to ``close_timeout`` seconds, then give up."""
        await self._outbox.close()

    def _wanted(self, event: PagerDutyEvent) -> bool:
        """A resolve right after a resolve of the same key (every success does one) is skipped."""
        last = self._last.get(event.dedup_key)
        self._last[event.dedup_key] = event.action
        self._last.move_to_end(event.dedup_key)
        while len(self._last) > 10 * self._queue_size:
            self._last.popitem(last=False)
        return not (event.action == "resolve" and last == "resolve")

    # ---- the sender -------------------------------------------------------------------
    async def _deliver(self, event: PagerDutyEvent) -> None:
        """Post one event, retrying what may pass later; count and log the result once."""
        attempt = 0
        while True:
            wait = self._not_before - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                await self._post(event)
            except _Retry as exc:
                delay = exc.delay if exc.delay is not None else self._backoff_delay(attempt)
                if attempt < self._retries and delay <= self._max_retry_after:
                    attempt += 1
                    await asyncio.sleep(delay)
                    continue
                if exc.delay is not None:  # still rate limited: hold the next event too
                    self._not_before = time.monotonic() + min(exc.delay, self._max_retry_after)
                self._failed(event, str(exc), attempt + 1)
            except _Final as exc:
                self._failed(event, str(exc), attempt + 1)
            else:
                self._metrics.pagerduty_events.labels(event.action, "sent").inc()
                log.info(
                    "pagerduty.sent", action=event.action, dedup_key=event.dedup_key, attempts=attempt + 1
                )
            return

    async def _post(self, event: PagerDutyEvent) -> None:
        body = {"routing_key": self._key, **event.body}
        try:
            async with self._session.post(self._url, json=body, timeout=self._timeout) as response:
                status, headers = response.status, response.headers
                text = await response.text(errors="replace")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _Retry(self._redact(f"{type(exc).__name__}: {exc}")) from None
        if 200 <= status < 300:
            return
        message = self._redact(f"PagerDuty answered HTTP {status}: {text[:300].strip()}")
        if status == 429:
            raise _Retry(message, retry_after(headers))
        if status >= 500:
            raise _Retry(message)
        raise _Final(message)

    def _backoff_delay(self, attempt: int) -> float:
        return float(self._backoff * 2**attempt + random.uniform(0, self._backoff))

    # ---- accounting ---------------------------------------------------------------------
    def _failed(self, event: PagerDutyEvent, error: str, attempts: int) -> None:
        self._metrics.pagerduty_events.labels(event.action, "failed").inc()
        log.warning(
            "pagerduty.delivery_failed",
            action=event.action,
            dedup_key=event.dedup_key,
            event_id=event.event_id,
            attempts=attempts,
            error=error,
        )

    def _drop(self, events: list[PagerDutyEvent], reason: str) -> None:
        for event in events:
            self._metrics.pagerduty_events.labels(event.action, "dropped").inc()
        if events:
            log.warning(
                "pagerduty.dropped",
                reason=reason,
                events=len(events),
                dedup_keys=[e.dedup_key for e in events[:10]],
            )

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "[redacted]") if self._key else text


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from a ``Retry-After`` header, or None when absent or not a number."""
    raw = headers.get("Retry-After")
    try:
        return None if raw is None else max(0.0, float(raw))
    except ValueError:
        return None


# ---- events ---------------------------------------------------------------------------
def dedup_key(rule: str, target: str) -> str:
    """One incident per (rule, target); a very long target is hashed to fit 255 characters."""
    key = f"remediator/{rule}/{target}"
    if len(key) <= MAX_DEDUP_KEY:
        return key
    return f"remediator/{rule[:100]}/sha256:{hashlib.sha256(target.encode()).hexdigest()}"


def event_for(notice: Notice) -> PagerDutyEvent | None:
    """``trigger`` for an escalation; ``resolve`` for a success or a resolution; else None."""
    if not notice.rule:
        return None
    if notice.kind == "brake_opened":
        key = f"remediator/brake/{notice.rule}"[:MAX_DEDUP_KEY]
        return PagerDutyEvent("trigger", key, brake_body(notice, key), notice.event_id)
    if notice.kind == "brake_released" and not notice.details.get("still_held"):  # the brake closed
        key = f"remediator/brake/{notice.rule}"[:MAX_DEDUP_KEY]
        return PagerDutyEvent("resolve", key, {"event_action": "resolve", "dedup_key": key})
    key = dedup_key(notice.rule, notice.target)
    if notice.kind == "escalated":
        return PagerDutyEvent("trigger", key, trigger_body(notice, key), notice.event_id)
    if notice.kind == "outcome" and notice.outcome == "escalated" and paged(notice):
        return PagerDutyEvent("trigger", key, trigger_body(notice, key), notice.event_id)
    if (notice.kind == "outcome" and notice.outcome == "succeeded") or notice.kind == "resolved":
        body = {"event_action": "resolve", "dedup_key": key}
        return PagerDutyEvent("resolve", key, body, notice.event_id)
    return None


def paged(notice: Notice) -> bool:
    """A chain's ``page:`` step asked for PagerDuty."""
    page = notice.details.get("page")
    return isinstance(page, dict) and bool(page.get("pagerduty"))


def brake_body(notice: Notice, key: str) -> dict[str, Any]:
    """A rule's blast-radius brake opened: one incident per rule, until it is resolved."""
    dry = " (dry run)" if notice.dry_run else ""
    return {
        "event_action": "trigger",
        "dedup_key": key,
        "payload": {
            "summary": f"remediator brake open{dry}: {notice.message}"[:MAX_SUMMARY],
            "source": "remediator",
            "severity": "critical",
            "component": notice.handler or "remediator",
            "group": notice.rule,
            "class": "RemediatorBrakeOpen",
            "custom_details": {
                "rule": notice.rule,
                "first_held_target": notice.target,
                "first_held_event_id": notice.event_id,
                "dry_run": notice.dry_run,
                "held": "remediator brakes",
                "release": f"remediator brakes release {notice.rule}",
            },
        },
        "client": "remediator",
    }


def trigger_body(notice: Notice, key: str) -> dict[str, Any]:
    alert = notice.alert
    labels = alert.labels if alert else {}
    window = format_duration(notice.attempt_window) if notice.attempt_window else "its window"
    if notice.kind == "outcome":  # a chain's page: step
        steps = len(notice.details.get("steps") or [])
        why = f"remediator handed rule {notice.rule} to a person after {steps} step(s)"
    else:
        why = f"remediator gave up: rule {notice.rule} failed {notice.failures} times within {window}"
    summary = f"{why} on {notice.target or 'its target'}" + (
        f" ({alert.name}: {alert.annotations['summary']})" if alert and "summary" in alert.annotations else ""
    )
    severity = labels.get("severity", "").lower()
    body: dict[str, Any] = {
        "event_action": "trigger",
        "dedup_key": key,
        "payload": {
            "summary": summary[:MAX_SUMMARY],
            "source": notice.target or "remediator",
            "severity": severity if severity in SEVERITIES else "critical",
            "component": notice.handler or None,
            "group": notice.rule,
            "class": alert.name if alert else None,
            "custom_details": {
                "rule": notice.rule,
                "target": notice.target,
                "handler": notice.handler,
                "event_id": notice.event_id,
                "failures": notice.failures,
                "attempt_window": window,
                "last_error": notice.message[:MAX_ERROR],
                "what_was_tried": [f"{s.name}: {s.message}" for s in notice.timeline if s.message][:30],
                "replay": replay_command(notice.event_id),
                "pause": "remediator pause --reason R --for 30m",
                "labels": labels,
            },
        },
        "client": "remediator",
    }
    body["payload"] = {k: v for k, v in body["payload"].items() if v is not None}
    if notice.external_url:
        body["client_url"] = notice.external_url
    made_by = SOURCE_NAMES.get(notice.source, SOURCE_NAMES["alertmanager"])[0]
    links = [
        {"href": href, "text": text}
        for href, text in (
            (alert.generator_url if alert else "", f"Source ({made_by})"),
            (alert.annotations.get("runbook_url", "") if alert else "", "Runbook"),
            *((url, title) for title, url in (alert.grafana_links() if alert else [])),
        )
        if href.startswith(("http://", "https://"))
    ]
    if links:
        body["links"] = links
    return body
