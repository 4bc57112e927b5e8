"""``kubernetes.job``: run a script as a Kubernetes Job made from the rule's template.

The Job is named after the event (``remediator-<rule>-<hash of the event id>``), so a
job delivered again (a worker died, a retry) finds the Job it created before and
waits for it instead of creating a second one (409 AlreadyExists: adopt it, if its
``remediator.io/event-id`` label says it is ours). The handler waits until the Job
is complete or failed, and puts the tail of its pod's log into the result.
"""

from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass
from typing import Annotated, Any, cast

from pydantic import AfterValidator, Field, field_serializer, model_validator

from handlers.command import (
    OPTION_MARK,
    REDACTED,
    Argument,
    EnvName,
    alert_env,
    option_marked,
    unmark_options,
)
from handlers.kube import ApiRequest, Label, Subdomain, api_client, client, send
from remediator import (
    Alert,
    Checked,
    Conflict,
    Context,
    Handler,
    HandlerParams,
    Observations,
    PermanentError,
    PollInterval,
    Result,
    RuleDuration,
    TemporaryError,
    VerifyTimeout,
    handler,
    planned_within,
    poll,
    seconds,
    verify_within,
)

PREFIX = "remediator"
CONTAINER = "job"
MANAGED_BY = "app.kubernetes.io/managed-by"
EVENT_LABEL = "remediator.io/event-id"
RULE_LABEL = "remediator.io/rule"
JOB_NAME_LABEL = "job-name"  # set on a Job's pods by the Job controller
_DIGEST = 10
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@+-]*")
_LOG_SPARE = 3.0  # seconds kept for reading the log after the wait


def kube_escaped(value: Any) -> str:
    """A value from the alert as Kubernetes passes it on: ``$`` doubled, so ``$(API_TOKEN)``
    in a label is never expanded into the container's variable (the kubelet turns ``$$``
    back into ``$``)."""
    return str(value).replace(OPTION_MARK, "\ufffd").replace("$", "$$")


def job_argument(value: Any) -> str:
    """Template finalizer of ``command`` and ``args``: escaped, and marked when it makes an option."""
    return option_marked(kube_escaped(value))


def _image(value: str) -> str:
    if len(value) > 512 or not _IMAGE.fullmatch(value):
        raise ValueError(f"{value!r} is not an image reference (e.g. registry.example/tools/fix:1.2)")
    return value


class JobParams(HandlerParams):
    namespace: Label
    """DNS-1123 label; may be templated. The Role must be in this namespace"""
    image: Annotated[str, AfterValidator(_image)]
    """image reference; written in the rule, never templated"""
    command: list[Argument] = Field(default_factory=list)
    """list; `command[0]` written in the rule, later items may be templated (each one whole argument)"""
    args: list[Argument] = Field(default_factory=list)
    """list, items may be templated"""
    env: dict[EnvName, Argument] = Field(default_factory=dict)
    """extra variables, values templated; `ALERT_*`/`REMEDIATOR_*` names refused. Values never appear in a
    plan (see below)
    """
    alert_env: bool = True
    """put the alert into the container's env as `ALERT_*` variables (as `command.run`)"""
    service_account: Subdomain | None = None
    """`serviceAccountName` of the pod; without it the pod gets no API token
    (`automountServiceAccountToken: false`). Never templated
    """
    active_deadline: RuleDuration = Field(default=600.0, ge=1, le=86400)
    """duration, at most `1d`: `activeDeadlineSeconds`"""
    ttl_after_finished: RuleDuration = Field(default=3600.0, ge=0, le=7 * 86400)
    """duration, at most `7d`: `ttlSecondsAfterFinished` (the finished Job and its pod are then deleted by
    Kubernetes)
    """
    backoff_limit: int = Field(default=0, ge=0, le=10)
    """`backoffLimit`, at most 10 (remediator does its own retries)"""
    log_lines: int = Field(default=50, ge=1, le=1000)
    """lines of the pod's log kept (`tailLines`), at most 1000"""
    verify_timeout: VerifyTimeout = None
    """duration: how long to wait for the Job to finish (unset: the rule's)"""
    poll_interval: PollInterval = 2.0
    """duration (at most `1m`) between two reads of the Job"""
    allow_option_args: bool = False
    """let a value from the alert start a `command` or `args` item with `-` (as `command.run`'s
    **Options**); written in the rule
    """

    @model_validator(mode="before")
    @classmethod
    def _options(cls, data: Any) -> Any:
        return unmark_options(data, ("command", "args"))

    @field_serializer("env", when_used="json")
    def _shown_env(self, env: dict[str, str]) -> dict[str, str]:
        """As simulate and the API show params: names only, never a value."""
        return dict.fromkeys(env, REDACTED)


_FIXED = (
    "image",
    "service_account",
    "active_deadline",
    "ttl_after_finished",
    "backoff_limit",
    "alert_env",
    "allow_option_args",
)


def _has_template(value: Any) -> bool:
    if isinstance(value, list):
        return any(_has_template(item) for item in value)
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _check(raw: dict[str, Any]) -> tuple[str, str] | None:
    """What runs, and with whose rights, is the rule's: never chosen by an alert's labels."""
    for key in _FIXED:
        if _has_template(raw.get(key)):
            return key, "must be written in the rule, not templated"
    command = raw.get("command")
    if isinstance(command, list) and command and _has_template(command[0]):
        return "command", (
            f"command[0] {command[0]!r} is a template: the program must be written in the rule "
            "(alert values may only be later arguments, or args)"
        )
    return None


# ---- the Job ----------------------------------------------------------------------------------


def job_name(rule: str, event_id: str) -> str:
    """``remediator-<rule>-<10 hex digits of sha256(event id)>``: a DNS-1123 label, at most 63."""
    digest = hashlib.sha256(event_id.encode()).hexdigest()[:_DIGEST]
    room = 63 - len(PREFIX) - len(digest) - 2
    slug = _NOT_SLUG.sub("-", rule.lower())[:room].strip("-")
    return "-".join(part for part in (PREFIX, slug, digest) if part)


def _label_value(value: str) -> str:
    return _NOT_SLUG.sub("-", value.lower())[:63].strip("-")


@dataclass(frozen=True, kw_only=True)
class Owner:
    """Whose Job it is: the rule, the event, the target, the alert (None in a plan without one)."""

    rule: str
    event_id: str
    target: str
    alert: Alert | None

    @classmethod
    def of(cls, ctx: Context) -> Owner:
        return cls(rule=ctx.rule, event_id=ctx.event_id, target=ctx.target, alert=ctx.alert)


def manifest(params: JobParams, owner: Owner, name: str) -> dict[str, Any]:
    from_alert = alert_env(owner.alert) if params.alert_env and owner.alert is not None else {}
    from_alert = {key: kube_escaped(value) for key, value in from_alert.items()}
    env = {**from_alert, **params.env}
    labels = {
        MANAGED_BY: PREFIX,
        RULE_LABEL: _label_value(owner.rule),
        EVENT_LABEL: _label_value(owner.event_id),
    }
    container: dict[str, Any] = {"name": CONTAINER, "image": params.image}
    if params.command:
        container["command"] = list(params.command)
    if params.args:
        container["args"] = list(params.args)
    if env:
        container["env"] = [{"name": key, "value": value} for key, value in env.items()]
    pod: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if params.service_account:
        pod["serviceAccountName"] = params.service_account
    else:  # no API rights unless the rule names a service account for it
        pod["automountServiceAccountToken"] = False
    annotations = {"remediator.io/target": owner.target}
    if owner.alert is not None:
        annotations["remediator.io/alertname"] = owner.alert.name
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": params.namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {
            "backoffLimit": params.backoff_limit,
            "activeDeadlineSeconds": max(1, round(params.active_deadline)),
            "ttlSecondsAfterFinished": round(params.ttl_after_finished),
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }


def shown(body: dict[str, Any]) -> dict[str, Any]:
    """The manifest as plans, the timeline and logs show it: every env value ``[redacted]``
    (a rule's env may hold a secret; only Kubernetes gets the values)."""
    copied = copy.deepcopy(body)
    for container in copied["spec"]["template"]["spec"]["containers"]:
        for item in container.get("env", []):
            item["value"] = REDACTED
    return copied


def _jobs(namespace: str, name: str = "", body: dict[str, Any] | None = None) -> ApiRequest:
    return ApiRequest(
        verb="create" if body is not None else "get",
        group="batch",
        version="v1",
        plural="jobs",
        kind="Job",
        namespace=namespace,
        name="" if body is not None else name,
        body=body,
    )


def _pods(namespace: str, name: str) -> ApiRequest:
    return ApiRequest(
        verb="list",
        group="",
        version="v1",
        plural="pods",
        kind="Pod",
        namespace=namespace,
        label_selector=f"{JOB_NAME_LABEL}={name}",
    )


def _log(namespace: str, pod: str, lines: int) -> ApiRequest:
    return ApiRequest(
        verb="get",
        group="",
        version="v1",
        plural="pods",
        kind="Pod",
        namespace=namespace,
        name=pod,
        subresource="log",
        query=(("tailLines", str(lines)),),
    )


def _plan(params: JobParams, body: dict[str, Any], within: str) -> list[str]:
    name = body["metadata"]["name"]
    return [
        f"{_jobs(params.namespace, body=shown(body))} (409 AlreadyExists: adopt the Job of this event)",
        f"poll {_jobs(params.namespace, name)} every {seconds(params.poll_interval)} until it is "
        f"Complete or Failed, for up to {within}",
        f"{_pods(params.namespace, name)}, then "
        f"{_log(params.namespace, '<its newest pod>', params.log_lines)}",
    ]


def _describe(params: JobParams) -> list[str]:
    owner = Owner(rule="<rule>", event_id="<event id>", target="<target>", alert=None)
    body = manifest(params, owner, f"{PREFIX}-<rule>-<hash of the event id>")
    labels = {MANAGED_BY: PREFIX, RULE_LABEL: "<rule>", EVENT_LABEL: "<event id>"}
    body["metadata"]["labels"] = body["spec"]["template"]["metadata"]["labels"] = labels
    plan = _plan(params, body, planned_within(params))
    if params.alert_env:
        plan[0] += "; the container's env also has the alert as ALERT_* variables"
    return plan


# ---- what the Job shows -----------------------------------------------------------------------


@dataclass(frozen=True)
class JobStatus:
    """One read of the Job: finished or not, and why."""

    done: bool
    succeeded: bool
    reason: str
    summary: str

    @classmethod
    def of(cls, job: Any) -> JobStatus:
        status = job.status
        active = int(getattr(status, "active", None) or 0)
        good = int(getattr(status, "succeeded", None) or 0)
        bad = int(getattr(status, "failed", None) or 0)
        summary = f"active {active}, succeeded {good}, failed {bad}"
        for cond in getattr(status, "conditions", None) or []:
            if cond.status != "True":
                continue
            if cond.type == "Complete":
                return cls(True, True, "Complete", summary)
            if cond.type == "Failed":
                why = ": ".join(part for part in (cond.reason, cond.message) if part)
                return cls(True, False, why or "Failed", summary)
        if good > 0:
            return cls(True, True, "succeeded", summary)
        return cls(False, False, "", summary)


class _Job:
    """The calls of one Job through the app's client."""

    def __init__(self, api: client.ApiClient, params: JobParams, ctx: Context, name: str) -> None:
        self.batch, self.core = client.BatchV1Api(api), client.CoreV1Api(api)
        self.params, self.ctx, self.name = params, ctx, name
        self.where = f"Job {params.namespace}/{name}"

    async def create(self, body: dict[str, Any]) -> bool:
        """True when created; False when this event's Job already exists (adopted)."""
        ns = self.params.namespace
        try:
            await send(
                self.ctx,
                _jobs(ns, body=shown(body)),  # what the timeline and errors show; the call sends body
                lambda timeout: self.batch.create_namespaced_job(
                    ns, cast(Any, body), _request_timeout=timeout
                ),
            )
        except Conflict:
            job = await self.read(record=True)
            owner = (job.metadata.labels or {}).get(EVENT_LABEL)
            if owner != _label_value(self.ctx.event_id):
                raise PermanentError(
                    f"{self.where} already exists and is not this event's (its {EVENT_LABEL} "
                    f"label is {owner!r}); not adopted"
                ) from None
            self.ctx.step("adopt", f"{self.where} exists already (a delivery before this one made it)")
            return False
        return True

    async def read(self, *, record: bool = False) -> Any:
        ns = self.params.namespace
        return await send(
            self.ctx,
            _jobs(ns, self.name),
            lambda timeout: self.batch.read_namespaced_job(self.name, ns, _request_timeout=timeout),
            record=record,
        )

    async def log(self) -> tuple[str, str]:
        """(pod name, the tail of its log); ("", why not) when there is none to read."""
        ns, lines = self.params.namespace, self.params.log_lines
        try:
            pods = await send(
                self.ctx,
                _pods(ns, self.name),
                lambda timeout: self.core.list_namespaced_pod(
                    ns, label_selector=f"{JOB_NAME_LABEL}={self.name}", _request_timeout=timeout
                ),
            )
            if not pods.items:
                return "", "(no pod of the Job is left to read a log from)"
            pod = max(pods.items, key=lambda p: str(p.metadata.creation_timestamp or "")).metadata.name
            text = await send(
                self.ctx,
                _log(ns, pod, lines),
                lambda timeout: self.core.read_namespaced_pod_log(
                    pod, ns, container=CONTAINER, tail_lines=lines, _request_timeout=timeout
                ),
            )
        except (TemporaryError, PermanentError) as exc:  # the outcome does not depend on the log
            return "", f"(the log could not be read: {exc})"
        return pod, str(text)


@dataclass(frozen=True)
class Started:
    """The Job this event runs (created now, or adopted from an earlier delivery)."""

    job: _Job
    created: bool


@handler(
    "kubernetes.job",
    params=JobParams,
    describe=_describe,
    check=_check,
    escapes={"command": job_argument, "args": job_argument, "env": kube_escaped},
)
class KubernetesJob(Handler[JobParams, dict[str, Any], Started]):
    """Create a Job from the rule's template (once per event), wait for it, report its log."""

    async def precheck(self, params: JobParams, ctx: Context) -> Checked[dict[str, Any]]:
        name = job_name(ctx.rule, ctx.event_id)
        return Checked(f"not read first: Job {params.namespace}/{name} is made for this event", {})

    async def act(self, params: JobParams, ctx: Context, seen: dict[str, Any]) -> Started | Result:
        name = job_name(ctx.rule, ctx.event_id)
        body = manifest(params, Owner.of(ctx), name)
        within = verify_within(params, ctx)
        if ctx.dry_run:
            return Result.dry_run(
                _plan(params, body, seconds(within)),
                f"dry run: would create Job {params.namespace}/{name}; nothing done",
                job=name,
            )
        job = _Job(await api_client(ctx), params, ctx, name)
        return Started(job, await job.create(body))

    async def verify(self, params: JobParams, ctx: Context, acted: Started) -> Result:
        job, name, within = acted.job, acted.job.name, verify_within(params, ctx)
        ctx.step(
            "wait",
            f"poll {_jobs(params.namespace, name)} until Complete or Failed, for up to {seconds(within)}",
        )
        observed = Observations(ctx)

        async def probe() -> tuple[bool, JobStatus]:
            seen = JobStatus.of(await job.read())
            observed.see(seen.summary)
            return seen.done, seen

        done, seen = await poll(ctx, probe, every=params.poll_interval, within=within, spare=_LOG_SPARE)
        pod, log = await job.log()
        details: dict[str, Any] = {
            "job": name,
            "namespace": params.namespace,
            "adopted": not acted.created,
            "pod": pod,
            "log": log,
        }
        if not done:
            return Result.failed(
                f"{job.where} did not finish within {seconds(within)} ({seen.summary}); it keeps "
                f"running until its activeDeadlineSeconds, and a retry of this event waits for it again",
                retryable=True,
                **details,
            )
        if not seen.succeeded:
            return Result.failed(f"{job.where} failed: {seen.reason}{_last_line(log)}", **details)
        return Result.succeeded(f"{job.where} completed{_last_line(log)}", **details)


def _last_line(log: str) -> str:
    lines = [line for line in log.strip().splitlines() if line.strip()]
    return f"; log: {lines[-1][:300]}" if lines else ""
