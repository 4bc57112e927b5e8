"""Test-only handler plugins, registered in a private Registry (never shipped)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Literal

from remediator import Checked, Context, Handler, HandlerParams, PermanentError, Result, TemporaryError
from remediator.handling.registry import Registry, handler

RUNS: dict[str, list[dict[str, object]]] = defaultdict(list)


class ProbeParams(HandlerParams):
    bucket: str = "default"
    outcome: Literal["succeeded", "failed", "noop", "raise", "permanent"] = "succeeded"
    sleep: float = 0.0
    name: str = ""
    unreachable: bool = False  # the precheck cannot reach the target


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
            return Checked(f"probe {params.bucket} reachable", None)

        async def act(self, params: ProbeParams, ctx: Context, seen: None) -> Result | None:
            ctx.step("act", f"probe {params.bucket}")
            if params.sleep:
                await asyncio.sleep(params.sleep)
            if ctx.dry_run:
                return Result.dry_run([f"probe {params.bucket}"])
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


# One rule on test.probe, shared by the HTTP tests.
PROBE_RULES = """
rules:
  - name: probe
    matchers: ['alertname="Probe"']
    handler: test.probe
    target: 'svc/{{ labels.service }}'
    params: {bucket: web}
"""
