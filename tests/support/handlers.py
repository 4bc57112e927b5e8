"""Test-only handler plugins, registered in a private Registry (never shipped)."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Literal

import structlog

from remediator import (
    Alert,
    Checked,
    Context,
    Handler,
    HandlerParams,
    PermanentError,
    Resources,
    Result,
    TemporaryError,
)
from remediator.handling.registry import Registry, handler
from remediator.settings import Settings
from tests.support.payloads import alert_model

RUNS: dict[str, list[dict[str, object]]] = defaultdict(list)  # each precheck of test.probe
ACTS: dict[str, list[str]] = defaultdict(list)  # each act of test.probe (the event id)


class ProbeParams(HandlerParams):
    bucket: str = "default"
    outcome: Literal["succeeded", "failed", "noop", "raise", "permanent"] = "succeeded"
    sleep: float = 0.0
    name: str = ""
    unreachable: bool = False  # the precheck cannot reach the target
    healthy: bool = False  # the precheck finds nothing to do (noop)
    refuse: bool = False  # the precheck refuses to act (failed)
    hold: float = 0.0  # seconds the bucket's first precheck waits (to be cut there)


def make_registry() -> Registry:
    registry = Registry()

    @handler(
        "test.probe",
        params=ProbeParams,
        registry=registry,
        describe=lambda p: [f"probe {p.bucket} -> {p.outcome}"],
    )
    class Probe(Handler[ProbeParams, None, None]):
        """Records each run; answers with the outcome its params ask for."""

        async def precheck(self, params: ProbeParams, ctx: Context) -> Checked[None]:
            RUNS[params.bucket].append(
                {"target": ctx.target, "event_id": ctx.event_id, "dry_run": ctx.dry_run, "name": params.name}
            )
            if params.unreachable:
                raise TemporaryError(f"{params.bucket}: connection refused")
            if params.hold and len(RUNS[params.bucket]) == 1:
                await asyncio.sleep(params.hold)
            if params.refuse:
                return Checked(
                    f"probe {params.bucket} locked", None, Result.failed(f"{params.bucket} is locked")
                )
            if params.healthy:
                return Checked(
                    f"probe {params.bucket} healthy", None, Result.noop(f"{params.bucket} is healthy")
                )
            return Checked(f"probe {params.bucket} reachable", None)

        async def act(self, params: ProbeParams, ctx: Context, seen: None) -> Result | None:
            ctx.step("act", f"probe {params.bucket}")
            if params.sleep:
                await asyncio.sleep(params.sleep)
            if ctx.dry_run:
                return Result.dry_run([f"probe {params.bucket}"])
            ACTS[params.bucket].append(ctx.event_id)
            if params.outcome == "raise":
                raise RuntimeError("boom")
            if params.outcome == "permanent":
                raise PermanentError("target is gone", details={"code": 404})
            return None

        async def verify(self, params: ProbeParams, ctx: Context, acted: None) -> Result:
            if params.outcome == "failed":
                return Result.failed("it did not recover")
            if params.outcome == "noop":
                return Result.noop("healthy already")
            return Result.succeeded("fixed and verified")

    return registry


def gated_rule(timeout: str) -> str:
    """The rule ``gated``: test.probe on svc/<service> once U0ALICE or S0ONCALL approves."""
    return f"""\
  - name: gated
    matchers: ['alertname="Gated"']
    handler: test.probe
    target: 'svc/{{{{ labels.service }}}}'
    params: {{bucket: '{{{{ labels.service }}}}'}}
    approval: {{required: true, timeout: {timeout}, approvers: [U0ALICE, S0ONCALL]}}
"""


# The rule ``fix`` on test.probe (its outcome from the alert), shared by the stats tests.
FIX_RULE = """\
  - name: fix
    matchers: ['alertname="Broken"']
    handler: test.probe
    target: 'svc/{{ labels.service }}'
    params: {outcome: '{{ labels.outcome }}'}
"""

# One rule on test.probe, shared by the HTTP tests.
PROBE_RULES = """
rules:
  - name: probe
    matchers: ['alertname="Probe"']
    handler: test.probe
    target: 'svc/{{ labels.service }}'
    params: {bucket: web}
"""


def make_context(
    resources: Resources | None = None,
    *,
    event_id: str = "test-event",
    rule: str = "test",
    target: str = "test/target",
    alert: Alert | None = None,
    dry_run: bool = False,
    verify_timeout: float = 30.0,
    deadline: float = 120.0,
) -> Context:
    """A handler's context for a test: ``deadline`` seconds from now."""
    return Context(
        event_id=event_id,
        rule=rule,
        target=target,
        alert=alert or alert_model("Test", starts_at="2024-01-01T00:00:00Z"),
        dry_run=dry_run,
        deadline=time.monotonic() + deadline,
        verify_timeout=verify_timeout,
        log=structlog.get_logger("test").bind(event_id=event_id, rule=rule, target=target),
        resources=resources or Resources(Settings()),
    )
