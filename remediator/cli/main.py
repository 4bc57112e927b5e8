"""remediator: serve, check, simulate, schema; events, event, stats, replay, pause, pauses, resume, jobs,
rules, approvals, approve, reject, brakes (admin)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import structlog

from remediator import about, logs
from remediator.api.auth import load_credentials
from remediator.cli import commands, hardening
from remediator.cli.client import CtlError, alerts_from_events, fetch_event_alerts
from remediator.durations import format_duration
from remediator.errors import RulesError, TemplateError
from remediator.handling.context import Context, Resources
from remediator.handling.owners import Owner, OwnerResolver, PodGone
from remediator.handling.registry import default_registry, load_plugins
from remediator.models import Alert, WebhookPayload
from remediator.rules.json_schema import schema_text
from remediator.rules.resolving import PodRef
from remediator.rules.rule import PlannedStep, render_pod, template_context
from remediator.rules.ruleset import Rule, RuleSet, load_rules, render
from remediator.settings import Settings, SettingsError, load_settings, removed_variables


def build_parser() -> argparse.ArgumentParser:
    """``remediator``'s command line (docs/reference/cli.md is generated from it)."""
    parser = argparse.ArgumentParser(prog="remediator", description=__doc__)
    parser.add_argument("--version", action="version", version=about.describe())
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the webhook receiver and the workers")
    serve.add_argument("--rules", type=Path, help="the rules file (REMEDIATOR_RULES; default rules.yaml)")
    serve.add_argument("--host", help="the address to listen on (REMEDIATOR_HOST; default 0.0.0.0)")
    serve.add_argument("--port", type=int, help="the port to listen on (REMEDIATOR_PORT; default 8080)")
    serve.add_argument(
        "--dry-run", action="store_true", default=None, help="plan only, everywhere (REMEDIATOR_DRY_RUN)"
    )
    serve.add_argument(
        "--insecure-no-auth",
        action="store_true",
        default=None,
        help="accept webhooks without credentials (local testing only)",
    )

    check = sub.add_parser("check", help="validate a rules file")
    check.add_argument(
        "path", nargs="?", type=Path, help="the rules file (default: REMEDIATOR_RULES, else rules.yaml)"
    )
    check.add_argument(
        "--strict", action="store_true", help="treat warnings (questionable settings) as errors"
    )

    simulate = sub.add_parser("simulate", help="show what a payload would trigger; no effects")
    simulate.add_argument("payload", type=Path, nargs="?", help="Alertmanager webhook JSON (or one alert)")
    simulate.add_argument("--rules", type=Path)
    simulate.add_argument("--json", action="store_true", help="machine-readable output")
    simulate.add_argument(
        "--from-events",
        type=int,
        metavar="N",
        help="the alerts of the last N events stored by a running service",
    )
    simulate.add_argument("--events-file", type=Path, help="events from `remediator events --json`")
    simulate.add_argument("--url", help="service URL for --from-events (REMEDIATOR_URL)")
    simulate.add_argument(
        "--kube",
        nargs="?",
        const="",
        metavar="KUBECONFIG",
        help="resolve the pods of `resolve:` rules to their owners with the Kubernetes API "
        "(this kubeconfig; default: KUBECONFIG or ~/.kube/config); reads only",
    )
    sub.add_parser(
        "schema",
        help="print the JSON Schema of rules.yaml, the params of every loaded handler included",
        description="Print the JSON Schema of rules.yaml (for editors: yaml-language-server's "
        "`# yaml-language-server: $schema=...` line). It covers the handlers of "
        "REMEDIATOR_HANDLER_MODULES; `check` stays the judge of templates and cross-checks.",
    )
    commands.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in commands.COMMANDS:
        return commands.run(args)
    if args.command == "simulate" and _sources(args) != 1:
        parser.error("simulate needs exactly one of PAYLOAD, --from-events N, --events-file F")
    try:
        settings = load_settings()
        if args.command == "serve":
            load_credentials(settings)  # a broken admin tokens file stops the start, clearly
    except SettingsError as exc:
        print("remediator: invalid environment:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    if args.command != "serve":  # serve logs them, once its log format is set
        for note in removed_variables(os.environ):
            print(f"remediator: warning: {note}", file=sys.stderr)
    load_plugins(settings.handler_modules)
    if args.command == "serve":
        return _serve(args, settings)
    if args.command == "schema":
        sys.stdout.write(schema_text(default_registry))
        return 0
    if args.command == "check":
        return _check(
            args.path or settings.rules, strict=args.strict, slack_webhook=settings.slack_webhook_mode()
        )
    return _simulate(args, args.rules or settings.rules, args.json, settings)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    overrides = {
        k: v
        for k, v in vars(args).items()
        if k in ("rules", "host", "port", "dry_run", "insecure_no_auth") and v is not None
    }
    settings = settings.model_copy(update=overrides)
    logs.configure(settings.log_format, settings.log_level)
    hardening.protect(settings)  # first: before the service holds any request or child
    for note in removed_variables(os.environ):
        structlog.get_logger("remediator").warning("settings.removed_variable", message=note)
    if not settings.webhook_auth_configured() and not settings.insecure_no_auth:
        print(
            "refusing to start without webhook credentials: set REMEDIATOR_WEBHOOK_TOKEN (or "
            "REMEDIATOR_WEBHOOK_USERNAME and REMEDIATOR_WEBHOOK_PASSWORD; each secret also as "
            "*_FILE, and an empty value counts as unset), or pass --insecure-no-auth to accept "
            "webhooks without credentials (local testing only)",
            file=sys.stderr,
        )
        return 2
    try:
        load_rules(settings.rules, default_registry, slack_webhook=settings.slack_webhook_mode())
    except RulesError as exc:
        _print_rule_errors(exc)
        return 1
    from remediator.api import serving
    from remediator.app import create_app, tune_gc

    app = create_app(settings)
    app.on_startup.append(tune_gc)  # after the app's own start-up: everything is loaded
    serving.run(app, settings)
    return 0


def _check(path: Path, *, strict: bool = False, slack_webhook: bool = False) -> int:
    try:
        rules = load_rules(path, default_registry, slack_webhook=slack_webhook)
    except RulesError as exc:
        _print_rule_errors(exc)
        return 1
    kind = "error" if strict else "warning"
    for warning in rules.warnings:
        print(f"{path}: {kind}: {warning}", file=sys.stderr)
    if strict and rules.warnings:
        print(f"{path}: {len(rules.warnings)} warning(s), failed because of --strict", file=sys.stderr)
        return 1
    enabled = sum(1 for r in rules.rules if r.enabled)
    warned = f", {len(rules.warnings)} warning(s)" if rules.warnings else ""
    print(f"{path}: OK, {len(rules)} rules ({enabled} enabled), hash {rules.hash}{warned}")
    return 0


def _print_rule_errors(exc: RulesError) -> None:
    for problem in exc.problems:
        print(f"{exc.source}: {problem}", file=sys.stderr)


def _sources(args: argparse.Namespace) -> int:
    return sum(x is not None for x in (args.payload, args.from_events, args.events_file))


def _simulate(args: argparse.Namespace, rules_path: Path, as_json: bool, settings: Settings) -> int:
    try:
        rules = load_rules(rules_path, default_registry)
    except RulesError as exc:
        _print_rule_errors(exc)
        return 1
    try:
        alerts = _simulation_alerts(args)
    except CtlError as exc:
        print(f"remediator simulate: {exc.message}", file=sys.stderr)
        return exc.code
    except (OSError, ValueError) as exc:
        print(f"{args.payload or args.events_file}: {exc}", file=sys.stderr)
        return 1
    resolved = None
    if args.kube is not None:
        if args.kube:
            os.environ["KUBECONFIG"] = args.kube  # this process only: the resolver reads it
        resolved = asyncio.run(resolve_pods(rules, alerts, settings))
    report = simulate(rules, alerts, resolved)
    if as_json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(format_simulation(report))
    failed = [m for entry in report for m in entry["matches"] if "error" in m]
    if failed:
        print(
            f"remediator simulate: {len(failed)} match(es) cannot render or validate "
            f"(first: rule {failed[0]['rule']}: {failed[0]['error']})",
            file=sys.stderr,
        )
        return 1
    return 0


def _simulation_alerts(args: argparse.Namespace) -> list[Alert]:
    if args.from_events is not None:
        if args.from_events < 1:
            raise CtlError("--from-events needs a positive count", 2)
        return fetch_event_alerts(args.url, args.from_events)
    if args.events_file is not None:
        return alerts_from_events(json.loads(args.events_file.read_text(encoding="utf-8")))
    return read_alerts(json.loads(args.payload.read_text(encoding="utf-8")))


def read_alerts(data: Any) -> list[Alert]:
    """A webhook payload, a single alert, or a list of alerts."""
    if isinstance(data, dict) and "alerts" in data:
        return WebhookPayload.model_validate(data).alerts
    if isinstance(data, list):
        return [Alert.model_validate(item) for item in data]
    return [Alert.model_validate(data)]


async def resolve_pods(rules: RuleSet, alerts: list[Alert], settings: Settings) -> dict[PodRef, Owner | str]:
    """The owner of every pod the ``resolve:`` rules name (or why there is none), read with
    the registered resolver: what the service would find at run time, now."""
    found: dict[PodRef, Owner | str] = {}
    resources = Resources(settings)
    try:
        for alert in alerts:
            for rule in rules.match(alert):
                if rule.resolve is None or rule.resolve.resolver is None:
                    continue
                try:
                    pod = render_pod(rule, alert)
                except TemplateError:
                    continue  # simulate reports it
                if pod not in found:
                    found[pod] = await _resolve_one(rule.resolve.resolver, pod, alert, resources)
    finally:
        await resources.aclose()
    return found


_QUIET = structlog.wrap_logger(
    structlog.PrintLogger(file=sys.stderr),
    wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
)


async def _resolve_one(
    resolver: OwnerResolver, pod: PodRef, alert: Alert, resources: Resources
) -> Owner | str:
    ctx = Context(
        event_id="simulate",
        rule="simulate",
        target=f"pod/{pod.namespace}/{pod.pod}",
        alert=alert,
        dry_run=True,
        deadline=time.monotonic() + 30.0,
        verify_timeout=0.0,
        log=_QUIET,  # the resolver's steps are not simulate's output (--json stays JSON)
        resources=resources,
    )
    try:
        return await resolver(pod.namespace, pod.pod, ctx)
    except PodGone as exc:
        return f"gone: {exc}"
    except Exception as exc:
        return f"error: {exc or type(exc).__name__}"


def simulate(
    rules: RuleSet, alerts: list[Alert], resolved: dict[PodRef, Owner | str] | None = None
) -> list[dict[str, Any]]:
    """Per alert: matching rules, rendered target and params, and the plan. Pure: the owners
    of ``resolve:`` rules' pods come in ``resolved`` (None: resolved at run time)."""
    report = []
    seen: dict[str, list[str]] = {}  # per rule with a brake: its distinct targets so far
    for alert in alerts:
        entry: dict[str, Any] = {
            "alert": alert.name,
            "status": alert.status,
            "fingerprint": alert.fingerprint,
            "matches": [],
        }
        for rule in rules.match(alert):
            match: dict[str, Any] = {
                "rule": rule.name,
                "handler": " → ".join(step.name for step in rule.steps),
                "dry_run": rule.policy.dry_run,
            }
            if alert.status == "resolved" and rule.policy.on_resolved == "ignore":
                match["action"] = "none: resolved alerts are only recorded (on_resolved: ignore)"
            try:
                known, owner = _owner(rule, alert, match, resolved)
                plan = render(rule, alert, owner) if known else None
            except TemplateError as exc:
                match["error"] = str(exc)
            else:
                entry["matches"].append(match)
                if plan is None:  # the owner is found at run time: so are target and params
                    continue
                match["target"] = plan.target
                match["params"] = plan.params.model_dump(mode="json")
                match["plan"] = plan.describe()
                if rule.chained:
                    match["steps"] = [_simulated_step(step) for step in plan.steps]
                if plan.probe is not None:
                    match["probe"] = plan.probe.as_dict()
                    match["probe_plan"] = plan.probe.plan(rule.policy.verify_timeout)
                if rule.inhibited_by:
                    match["inhibited_by"] = [str(m) for m in rule.inhibited_by]
                    match["inhibit_equal"] = list(rule.policy.inhibit_equal)
                if rule.context:
                    match["context"] = gathered_before(rule, alert, owner)
                if (brake := rule.policy.brake) is not None and alert.status == "firing":
                    match["max_targets"] = brake_text(brake, plan.target, seen.setdefault(rule.name, []))
                continue
            entry["matches"].append(match)
        report.append(entry)
    return report


def gathered_before(rule: Rule, alert: Alert, owner: Owner | None) -> list[str]:
    """What the rule's ``context:`` would gather for ``alert`` (rendered, nothing fetched)."""
    context = template_context(alert, owner)
    shown = []
    for entry in rule.context:
        try:
            shown.append(entry.spec.describe(entry.render(context)))
        except TemplateError as exc:
            shown.append(f"{entry.kind}: cannot render its params, it would be noted as failed: {exc}")
    return shown


def _simulated_step(step: PlannedStep) -> dict[str, Any]:
    """One step of a chain as simulate shows it: its handler and params, or the page."""
    tpl = step.template
    if tpl.page is not None or step.params is None:
        page = tpl.page.model_dump() if tpl.page is not None else {}
        return {"step": tpl.index + 1, "page": page, "plan": step.plan()}
    return {
        "step": tpl.index + 1,
        "handler": tpl.name,
        "params": step.params.model_dump(mode="json"),
        "on_success": tpl.on_success,
        "on_failure": tpl.on_failure,
        "timeout": tpl.timeout,
        "plan": step.plan(),
    }


def brake_text(brake: tuple[int, float], target: str, targets: list[str]) -> str:
    """What the brake (``max_targets``) would do with ``target``, given the distinct
    ``targets`` this payload's earlier alerts gave the rule (updated)."""
    count, within = brake
    limit = f"max_targets {count} within {format_duration(within)}"
    if target not in targets:
        targets.append(target)
    n = targets.index(target) + 1
    if n > count:
        return f"held:brake: target {n} of this payload, over {limit} (released by an operator)"
    return f"target {n} of this payload counts toward {limit}"


def _owner(
    rule: Rule, alert: Alert, match: dict[str, Any], resolved: dict[PodRef, Owner | str] | None
) -> tuple[bool, Owner | None]:
    """(whether the plan can be rendered, the owner to render it with). For a ``resolve:``
    rule, the pod it names and what is known of its owner go into ``match``."""
    if rule.resolve is None:
        return True, None
    pod = render_pod(rule, alert)
    match["pod"] = f"{pod.namespace}/{pod.pod}"
    found = resolved.get(pod) if resolved is not None else None
    if found is None:
        match["owner"] = "resolved at run time: the workload that owns the pod (--kube resolves it now)"
        return False, None
    if isinstance(found, Owner):
        match["owner"] = found.describe()
        return True, found
    if found.startswith("gone: "):
        match["owner"] = found
        match["action"] = f"skipped:gone: {found.removeprefix('gone: ')}"
        return False, None
    raise TemplateError(f"cannot resolve the owner of {pod}: {found.removeprefix('error: ')}")


def format_simulation(report: list[dict[str, Any]]) -> str:
    lines = []
    for entry in report:
        lines.append(f"alert {entry['alert']} ({entry['status']}, {entry['fingerprint']})")
        if not entry["matches"]:
            lines.append("  no rule matches")
        for match in entry["matches"]:
            lines.append(f"  rule {match['rule']} -> {match['handler']}")
            if "error" in match:
                lines.append(f"    ERROR: {match['error']}")
                continue
            if "pod" in match:
                lines.append(f"    pod: {match['pod']}")
                lines.append(f"    owner: {match['owner']}")
            if "action" in match:
                lines.append(f"    {match['action']}")
            if "target" not in match:
                continue
            lines.append(f"    target: {match['target']}")
            if "steps" in match:
                for step in match["steps"]:
                    if "handler" in step:
                        lines.append(
                            f"    step {step['step']}: {step['handler']} {json.dumps(step['params'])} "
                            f"(on success: {step['on_success']}, on failure: {step['on_failure']})"
                        )
                    else:
                        lines.append(f"    step {step['step']}: {step['plan'][0]}")
            else:
                lines.append(f"    params: {json.dumps(match['params'])}")
            if match.get("inhibited_by"):
                equal = match.get("inhibit_equal")
                same = f" with the same {', '.join(equal)}" if equal else ""
                lines.append(f"    waits while firing: {', '.join(match['inhibited_by'])}{same}")
            for entry in match.get("context", []):
                lines.append(f"    context: {entry}")
            if "max_targets" in match:
                lines.append(f"    brake: {match['max_targets']}")
            for step in match["plan"]:
                lines.append(f"    plan: {step}")
            for step in match.get("probe_plan", []):
                lines.append(f"    plan: {step}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
