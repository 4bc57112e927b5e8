"""Prometheus metrics; names are part of the contract (design.md section 3)."""

from __future__ import annotations

import platform

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

from remediator.about import version

# No ``*_created`` series: nobody graphs them and they double the counters' series.
# (prometheus_client offers this per process only; this process exposes only ours.)
disable_created_metrics()  # type: ignore[no-untyped-call]

_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
# An alert's start to a verified repair: from seconds (a fast handler on a fresh alert)
# to hours (a circuit opened, a person fixed the cause and replayed).
REPAIR_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400)


class Metrics:
    """One set per app, on its own registry (so tests can run several apps)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.alerts_received = Counter(
            "remediator_alerts_received_total",
            "Alerts received by status and source (alertmanager, grafana, manual: an admin replay).",
            ["status", "source"],
            registry=r,
        )
        self.alerts_deduplicated = Counter(
            "remediator_alerts_deduplicated_total",
            "Deliveries collapsed at intake: the same rule, alert status and firing episode "
            "was already queued, running or done (an Alertmanager HA twin, a repeat).",
            ["rule"],
            registry=r,
        )
        self.alerts_unmatched = Counter(
            "remediator_alerts_unmatched_total",
            "Alerts that matched no rule, by source.",
            ["source"],
            registry=r,
        )
        self.webhook_requests = Counter(
            "remediator_webhook_requests_total",
            "Webhook requests by HTTP code.",
            ["code"],
            registry=r,
        )
        self.jobs = Counter(
            "remediator_jobs_total",
            "Jobs finished by rule, outcome and skip reason.",
            ["rule", "outcome", "reason"],
            registry=r,
        )
        self.handler_duration = Histogram(
            "remediator_handler_duration_seconds",
            "Handler run time.",
            ["handler"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "remediator_queue_depth",
            "Jobs stored and not yet finished.",
            registry=r,
        )
        self.lease_contention = Counter(
            "remediator_lease_contention_total",
            "Jobs that found the target's lease taken.",
            ["rule"],
            registry=r,
        )
        self.circuit_open = Gauge(
            "remediator_circuit_open",
            "1 while a rule has an open circuit on some target.",
            ["rule"],
            registry=r,
        )
        self.brakes_opened = Counter(
            "remediator_brakes_opened_total",
            "Times a rule's blast-radius brake opened (max_targets): it wanted more distinct "
            "targets within the window than allowed, and the further jobs were held.",
            ["rule"],
            registry=r,
        )
        self.brake_held_jobs = Gauge(
            "remediator_brake_held_jobs",
            "Jobs a rule's blast-radius brake holds until an operator releases them (read "
            "from the shared store at each scrape).",
            ["rule"],
            registry=r,
        )
        self.notifications = Counter(
            "remediator_notifications_total",
            "Notifications by result.",
            ["result"],
            registry=r,
        )
        self.rules_reload = Counter(
            "remediator_rules_reload_total",
            "Rules reloads by result.",
            ["result"],
            registry=r,
        )
        self.dead_letters = Counter(
            "remediator_dead_letters_total",
            "Jobs given up after too many deliveries.",
            registry=r,
        )
        self.store_errors = Counter(
            "remediator_store_errors_total",
            "Store operations that failed.",
            ["operation"],
            registry=r,
        )
        self.store_evictions = Counter(
            "remediator_store_evictions_total",
            "Entries the memory store dropped at its count cap, oldest first "
            "(firing index, episode and resolution markers).",
            ["kind"],
            registry=r,
        )
        self.deferred = Counter(
            "remediator_jobs_deferred_total",
            "Jobs put back to wait (inhibition, busy lease or slot, retry of a temporary failure).",
            ["rule", "reason"],
            registry=r,
        )
        self.overhead = Histogram(
            "remediator_pickup_latency_seconds",
            "Webhook received to handler start.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1, 5),
            registry=r,
        )
        self.rules_loaded = Gauge("remediator_rules_loaded", "Rules in the active set.", registry=r)
        self.time_to_repair = Histogram(
            "remediator_time_to_repair_seconds",
            "An alert's startsAt to a verified success of an automatic run.",
            ["rule"],
            buckets=REPAIR_BUCKETS,
            registry=r,
        )
        self.pagerduty_events = Counter(
            "remediator_pagerduty_events_total",
            "PagerDuty Events API v2 events by action (trigger, resolve) and result.",
            ["action", "result"],
            registry=r,
        )
        self.auth_failures = Counter(
            "remediator_auth_failures_total",
            "Wrong credentials presented, by surface (webhook, admin, console).",
            ["surface"],
            registry=r,
        )
        self.auth_refused = Counter(
            "remediator_auth_refused_total",
            "Requests answered 429 because their client address or presented name had too "
            "many failed credentials within REMEDIATOR_AUTH_FAILURE_WINDOW, by surface.",
            ["surface"],
            registry=r,
        )
        self.admin_tokens_reload = Counter(
            "remediator_admin_tokens_reload_total",
            "Reloads of REMEDIATOR_ADMIN_TOKENS_FILE after a change, by result (ok, error).",
            ["result"],
            registry=r,
        )
        self.store_resets = Counter(
            "remediator_store_resets_total",
            "Wipes of the state store this replica saw: its generation marker was gone or "
            "replaced (a Redis restarted without persistence, a FLUSHALL).",
            registry=r,
        )
        self.build_info = Gauge(
            "remediator_build_info",
            "Always 1; the labels say which remediator and Python serve.",
            ["version", "python"],
            registry=r,
        )
        self.build_info.labels(version(), platform.python_version()).set(1)
        self._webhook_codes: dict[int, Counter] = {}

    def webhook_answered(self, status: int) -> None:
        """Count one webhook answer; the labelled child is looked up once per code
        (``labels()`` costs a few microseconds, on every request of a storm)."""
        child = self._webhook_codes.get(status)
        if child is None:
            child = self._webhook_codes[status] = self.webhook_requests.labels(str(status))
        child.inc()
