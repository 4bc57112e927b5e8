"""The admin API's client for the CLI: where the service is, the token, one call, and
every failure as a ``CtlError`` with the exit code to use (``commands.py`` runs them)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import aiohttp

from remediator.cli import reports
from remediator.models import Alert

DEFAULT_URL = "http://127.0.0.1:8080"
PAGE = 500


class CtlError(Exception):
    """A failure to report in one line, with the exit code to use."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message, self.code = message, code


def admin_token() -> str | None:
    token = os.environ.get("REMEDIATOR_ADMIN_TOKEN")
    path = os.environ.get("REMEDIATOR_ADMIN_TOKEN_FILE")
    if (not token or not token.strip()) and path:  # blank counts as unset, as in the service
        try:
            token = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CtlError(f"cannot read REMEDIATOR_ADMIN_TOKEN_FILE {path}: {exc}", 2) from exc
    return token if token and token.strip() else None


def service_url(given: str | None) -> str:
    return (given or os.environ.get("REMEDIATOR_URL") or DEFAULT_URL).rstrip("/")


class AdminClient:
    """The admin API over aiohttp; every failure becomes a ``CtlError``."""

    def __init__(self, url: str, token: str | None, timeout: float = 30.0) -> None:
        self.url, self.token = url, token
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AdminClient:
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def call(
        self, method: str, path: str, *, params: dict[str, str] | None = None, body: Any = None
    ) -> Any:
        assert self._session is not None, "use `async with AdminClient(...)`"
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            async with self._session.request(
                method, self.url + path, params=params, json=body, headers=headers
            ) as response:
                text, status = await response.text(errors="replace"), response.status
        except aiohttp.InvalidURL as exc:
            raise CtlError(f"invalid service URL {self.url!r}", 2) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise CtlError(f"cannot reach {self.url}: {exc or type(exc).__name__}", 3) from exc
        try:
            data = json.loads(text) if text else None
        except ValueError:
            data = None
        if status >= 400:
            raise CtlError(self._explain(status, data, text))
        return data

    def _explain(self, status: int, data: Any, text: str) -> str:
        if not isinstance(data, dict) or "error" not in data:
            return f"{self.url} answered HTTP {status}: {text[:200].strip()}"
        if status == 401:
            if not self.token:
                return "unauthorized (401): set REMEDIATOR_ADMIN_TOKEN to the service's admin token"
            return "unauthorized (401): the service rejected REMEDIATOR_ADMIN_TOKEN"
        if status == 404 and "disabled" in str(data.get("detail")):
            return (
                f"the admin API is disabled on {self.url} (404): "
                "start the service with REMEDIATOR_ADMIN_TOKEN set"
            )
        return f"HTTP {status}: {data['error']}" + reports.detail_text(data.get("detail"))

    async def events(
        self, limit: int, rule: str | None = None, outcome: str | None = None
    ) -> list[dict[str, Any]]:
        """Newest first, following the cursor until ``limit`` events are read."""
        out: list[dict[str, Any]] = []
        cursor: str | None = None
        while len(out) < limit:
            params = {"limit": str(min(PAGE, limit - len(out)))}
            params |= {k: v for k, v in (("rule", rule), ("outcome", outcome), ("cursor", cursor)) if v}
            page = await self.call("GET", "/api/v1/events", params=params)
            out += page["events"]
            cursor = page.get("next_cursor")
            if not cursor or not page["events"]:
                break
        return out[:limit]

    async def event(self, event_id: str) -> dict[str, Any]:
        return dict(await self.call("GET", f"/api/v1/events/{segment(event_id)}"))

    async def replay(self, event_id: str, options: dict[str, Any]) -> dict[str, Any]:
        return dict(await self.call("POST", f"/api/v1/replay/{segment(event_id)}", body=options))

    async def wait_events(self, event_ids: list[str], within: float) -> list[dict[str, Any]]:
        """Poll until every event is recorded (a job in flight answers 404) or time is up."""
        deadline, done = time.monotonic() + within, {}
        while True:
            for event_id in event_ids:
                if event_id not in done:
                    try:
                        done[event_id] = await self.event(event_id)
                    except CtlError as exc:
                        if "HTTP 404" not in exc.message:
                            raise
            if len(done) == len(event_ids) or time.monotonic() >= deadline:
                return [done[e] for e in event_ids if e in done]
            await asyncio.sleep(0.25)


def segment(event_id: str) -> str:
    if not event_id or any(c in event_id for c in "/?#%") or len(event_id) > 64:
        raise CtlError(f"invalid event id {event_id!r}", 2)
    return event_id


def fetch_event_alerts(url: str | None, count: int, timeout: float = 30.0) -> list[Alert]:
    """The alerts of the last ``count`` stored events, for ``simulate --from-events``."""

    async def fetch() -> list[dict[str, Any]]:
        async with AdminClient(service_url(url), admin_token(), timeout) as client:
            return await client.events(count)

    return alerts_from_events(asyncio.run(fetch()))


def alerts_from_events(events: Any) -> list[Alert]:
    """Distinct alerts of exported events (``remediator events --json``), newest first."""
    if not isinstance(events, list):
        raise ValueError("expected a JSON list of events, as `remediator events --json` prints")
    seen, alerts = set(), []
    for event in events:
        raw = event.get("alert") if isinstance(event, dict) else None
        if raw is None:
            continue
        alert = Alert.model_validate(raw)
        key = (alert.fingerprint, alert.status, alert.starts_at)
        if key not in seen:
            seen.add(key)
            alerts.append(alert)
    return alerts


def fetch_live(url: str | None, pairs: list[tuple[str, str]], timeout: float = 30.0) -> dict[str, Any]:
    """What a running service holds now, for ``simulate --url``: its pauses, whether it runs
    dry, its rules' brakes, and the live gates (``/api/v1/gates``) of each (rule, target) in ``pairs``. Every
    route it asks is read-only: a read-only token is enough."""

    async def fetch() -> dict[str, Any]:
        async with AdminClient(service_url(url), admin_token(), timeout) as client:
            pauses = await client.call("GET", "/api/v1/pauses")
            rules = await client.call("GET", "/api/v1/rules")
            try:
                brakes = (await client.call("GET", "/api/v1/brakes"))["brakes"]
            except CtlError as exc:  # a service from before the brake has none
                if "HTTP 404" not in exc.message:
                    raise
                brakes = []
            answers = await asyncio.gather(  # every call answered before one failure is raised
                *(client.call("GET", "/api/v1/gates", params={"rule": r, "target": t}) for r, t in pairs),
                return_exceptions=True,
            )
            for answer in answers:
                if not isinstance(answer, BaseException):
                    continue
                if not isinstance(answer, CtlError) or "HTTP 404" not in answer.message:
                    raise answer
                raise CtlError(
                    f"{client.url} has no /api/v1/gates (a service older than this command): its live "
                    "cooldowns and circuits cannot be read; without --url, simulate checks the rules "
                    "file alone (--from-events reads REMEDIATOR_URL)"
                ) from answer
            gates = list(answers)
        return {
            "url": client.url,
            "pauses": pauses["pauses"],
            "dry_run": bool(rules.get("dry_run")),
            "rules_hash": rules.get("hash"),
            "gates": dict(zip(pairs, gates, strict=True)),
            "brakes": {brake["rule"]: brake for brake in brakes},
        }

    return asyncio.run(fetch())
