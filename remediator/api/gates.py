"""The live gates of one (rule, target) (``GET /api/v1/gates``): its cooldown, an open
circuit and the target's lease, as the store holds them now. A read-only token may ask:
``remediator simulate --url`` does, to say what would happen to an alert now."""

from __future__ import annotations

from aiohttp import web

from remediator import clock
from remediator.api.bodies import parse_query, reply
from remediator.api.gate_models import GateQuery, GateState, LeaseState, Remaining
from remediator.api.guards import reader
from remediator.api.service import Service


@reader
async def get_gates(request: web.Request, svc: Service) -> web.Response:
    query = parse_query(request, GateQuery)
    gates, locks, now = svc.store.gates, svc.store.locks, clock.now()
    cooldown = await gates.cooldown_remaining(query.rule, query.target)
    circuit = await gates.circuit_remaining(query.rule, query.target)
    lease = await locks.lease_remaining(query.target)
    holder = await locks.lease_holder(query.target) if lease > 0 else None
    return reply(
        GateState(
            rule=query.rule,
            target=query.target,
            now=now,
            rule_loaded=svc.rules.loaded and svc.rules.current().get(query.rule) is not None,
            cooldown=_remaining(cooldown, now),
            circuit=_remaining(circuit, now),
            lease=LeaseState(until=now + lease, remaining_seconds=lease, holder=holder or "")
            if lease > 0
            else None,
        )
    )


def _remaining(seconds: float, now: float) -> Remaining | None:
    return Remaining(until=now + seconds, remaining_seconds=seconds) if seconds > 0 else None


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/gates", get_gates, allow_head=False)
