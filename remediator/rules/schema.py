"""The ``rules.yaml`` schema: the rule ``Policy``, a rule as written (``RuleSpec``), the file.

``Policy`` is the one definition of a rule's policy knobs: ``defaults:`` is a Policy,
a rule may set any of its fields, ``RuleSpec`` gets them (each optional) from it, and
the admin API shows it. A new knob is one field here.
"""

from __future__ import annotations

import re
import zoneinfo
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from remediator.durations import RuleDuration
from remediator.rules.checks import escalate_problem
from remediator.rules.contexts import MAX_ENTRIES, ContextEntry
from remediator.rules.patterns import PatternError, compile_pattern

RULE_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
_RULE_NAME = re.compile(RULE_NAME_PATTERN)
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# A Slack member id (U..., or W... on Enterprise Grid) or a user-group id (S...).
SLACK_ID = re.compile(r"^[UWS][A-Z0-9]{2,20}$")
# A channel: its name (``#team-alerts``; Slack's rules: lowercase letters, digits, - and _,
# at most 80) or its id (``C0123ABCD``; G... for an old private channel).
SLACK_CHANNEL = re.compile(r"^(#?[a-z0-9][a-z0-9._-]{0,79}|[CG][A-Z0-9]{6,20})$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _a_list(value: Any) -> Any:
    """Written as a YAML list (kept a tuple, so the frozen policy stays immutable)."""
    if not isinstance(value, list | tuple):
        raise PydanticCustomError("list_type", "Input should be a valid list")
    return value


def _label_names(value: tuple[str, ...]) -> tuple[str, ...]:
    for name in value:
        if not _LABEL_NAME.match(name):
            raise ValueError(f"{name!r} is not a label name")
    return value


LabelNames = Annotated[tuple[str, ...], BeforeValidator(_a_list), AfterValidator(_label_names)]


def _statuses(value: tuple[int, ...]) -> tuple[int, ...]:
    for status in value:
        if not 100 <= status <= 599:
            raise ValueError(f"{status} is not an HTTP status code (100-599)")
    return value


class ProbeSpec(_Strict):
    """An HTTP check of what users see, written under a rule's ``probe:``.

    Before the handler acts, a passing probe means the target is healthy (``noop``);
    after it succeeds, the probe must pass within the rule's ``verify_timeout``.
    A rule's own field, not a ``Policy`` one: a URL names one service, no default can.
    """

    model_config = ConfigDict(use_attribute_docstrings=True)

    url: str
    """Absolute http(s) URL, templated; substituted values are percent-encoded."""
    method: Literal["GET", "HEAD"] = "GET"
    """A probe only reads."""
    expect_status: Annotated[tuple[int, ...], BeforeValidator(_a_list), AfterValidator(_statuses)] = ()
    """Statuses that pass; empty: any 2xx."""
    expect_body: str | None = None
    """A regular expression (RE2) the body must contain."""
    reject_body: str | None = None
    """A regular expression (RE2) the body must not contain (e.g. an error code in a 200)."""
    timeout: RuleDuration = Field(default=10.0, gt=0, le=300)
    """Seconds one request may take."""
    interval: RuleDuration = Field(default=10.0, gt=0)
    """Seconds between two tries while waiting for the probe to pass after acting."""

    @field_validator("expect_body", "reject_body")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                compile_pattern(value)
            except PatternError as exc:
                raise ValueError(f"{value!r} is not a valid regular expression: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _body_needs_get(self) -> ProbeSpec:
        for key in ("expect_body", "reject_body"):
            if getattr(self, key) is not None and self.method == "HEAD":
                raise ValueError(f"{key} needs method GET: a HEAD answer has no body")
        return self


class ResolveSpec(_Strict):
    """The pod an alert names, resolved to the workload that owns it before the lease
    (written under a rule's ``resolve:``). Both are templated; a rule's own field, not a
    ``Policy`` one: what to resolve depends on the rule's alert."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    pod: str
    """The pod's name, e.g. ``'{{ labels.pod }}'`` (a DNS-1123 subdomain once rendered)."""
    namespace: str
    """The pod's namespace, e.g. ``'{{ labels.namespace }}'`` (a DNS-1123 label once rendered)."""


def _slack_channel(value: str | None) -> str | None:
    if value is not None and not SLACK_CHANNEL.match(value):
        raise ValueError(
            f"{value!r} is not a Slack channel: write its name (#team-alerts: lowercase letters, "
            "digits, '-', '_' or '.') or its id (C0123ABCD)"
        )
    return value


SlackChannel = Annotated[str | None, AfterValidator(_slack_channel)]


def _slack_ids(value: tuple[str, ...]) -> tuple[str, ...]:
    for ident in value:
        if not isinstance(ident, str) or not SLACK_ID.match(ident):
            raise ValueError(
                f"{ident!r} is not a Slack user id (U..., W...) or user-group id (S...): "
                "copy it from the member's or the group's profile (e.g. U024BE7LH, S0614TZR7)"
            )
    return value


SlackIds = Annotated[tuple[str, ...], BeforeValidator(_a_list), AfterValidator(_slack_ids)]


class ApprovalSpec(_Strict):
    """A human says yes before the handler acts, written under ``approval:``.

    The job passes the gates that need no lease, then waits for an approver's decision in
    Slack (buttons) or from the API/CLI; ``timeout`` without one ends it ``skipped:not_approved``.
    """

    model_config = ConfigDict(use_attribute_docstrings=True)

    required: bool = True
    """``false`` turns a default's approval off for this rule."""
    timeout: RuleDuration = Field(default=1800.0, gt=0)
    """Seconds to wait for a decision."""
    approvers: SlackIds = ()
    """Slack user ids (``U...``) and user-group ids (``S...``) whose members may decide."""

    @model_validator(mode="after")
    def _someone_decides(self) -> ApprovalSpec:
        if self.required and not self.approvers:
            raise ValueError("approvers: name at least one Slack user (U...) or user group (S...)")
        return self


class BrakeSpec(_Strict):
    """The blast-radius brake, written under ``max_targets:``: at most ``count`` distinct
    targets a rule acts on within ``within``; the jobs of further targets are held
    (``held:brake``) until an operator releases them."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    count: int | None = Field(default=None, ge=1)
    """Distinct targets the rule may act on within ``within``."""
    within: RuleDuration | None = Field(default=None, gt=0, le=7 * 86400.0)
    """The sliding window, in seconds (at most 7 days)."""
    enabled: bool = True
    """``false`` turns a default's brake off for this rule."""

    @model_validator(mode="after")
    def _both(self) -> BrakeSpec:
        if self.enabled and (self.count is None or self.within is None):
            raise ValueError("needs count and within, e.g. {count: 20, within: 10m} (or enabled: false)")
        return self


class Policy(_Strict):
    """How a rule runs once it matches; every field may be set in ``defaults:`` or per rule.

    A rule's policy is ``defaults`` updated with the fields the rule sets itself.
    """

    model_config = ConfigDict(use_attribute_docstrings=True)

    inhibit_equal: LabelNames = ()
    """label names, as Alertmanager's inhibit rule `equal`: a firing alert only holds the job back if it
    has the same value as the handled alert for each of these labels (a label missing on both counts as
    equal). Without it, any matching alert anywhere blocks. `simulate` shows it (`waits while firing:
    ... with the same namespace`)
    """
    concurrency_group: str | None = None
    """name of a budget shared across rules; size in top-level `concurrency_limits` (default 1)"""
    escalate: str = ""
    """Slack mention posted when the circuit opens: `@here`, `@channel` or `@everyone` alone, or one or
    more of `<!here>`, `<!channel>`, `<!everyone>`, `<!subteam^ID>` (a user group), `<@U...>` (a user),
    separated by spaces. Anything else (`@oncall-team`) would notify nobody and is an error
    """
    cooldown: RuleDuration = 900.0
    """Seconds before the same target is repaired again after a success."""
    lease: RuleDuration = 600.0
    """Seconds one replica holds the target while it repairs it."""
    max_attempts: int = Field(default=3, ge=1)
    """Failures within ``attempt_window`` that open the circuit."""
    attempt_window: RuleDuration = 3600.0
    """Seconds a failure counts toward ``max_attempts``."""
    verify_timeout: RuleDuration = 300.0
    """Seconds a verifying handler waits for recovery."""
    timeout: RuleDuration = 600.0
    """Seconds before the handler is stopped."""
    inhibit_wait: RuleDuration = 1800.0
    """Seconds a job waits while an ``inhibited_by`` alert fires."""
    dry_run: bool = False
    """plan only for this rule"""
    on_resolved: Literal["ignore", "run"] = "ignore"
    """`ignore`: a resolved alert is recorded and posted, nothing runs; `run`: run the handler on resolved
    too
    """
    on_pause: Literal["hold", "skip"] = "hold"
    """a job that meets a pause or an open maintenance window: `hold` waits (looks again every
    `DEFER_INTERVAL`, at once when the pause is lifted, and when it ends) and then passes every gate
    again (still firing: it runs; resolved meanwhile: `skipped:resolved`); `skip` records
    `skipped:paused` at once (the behaviour before holds). Manual replays are always `skipped:paused`
    while paused
    """
    approval: ApprovalSpec | None = None
    """`{required: true, timeout: 30m, approvers: [U024BE7LH, S0614TZR7]}`: the job waits for an approver's
    yes before it acts (see [Approvals](../how-to/approvals.md)). `approvers` are Slack user ids
    (`U...`, `W...`) and user-group ids (`S...`), at least one when `required`; `timeout` (default
    `30m`) is a duration with a unit. In `defaults:` it gates every rule; a rule turns it off with
    `approval: {required: false}`
    """
    slack_channel: SlackChannel = None
    """the Slack channel of this rule's threads, escalations and approval requests: a name (`#team-alerts`:
    lowercase letters, digits, `-`, `_`, `.`) or an id (`C0123ABCD`). Bot-token mode only: with
    `SLACK_WEBHOOK_URL` (an incoming webhook posts to its one channel) `check` and `serve` refuse it.
    The bot must be in the channel; if Slack answers `not_in_channel` or `channel_not_found`, the
    message goes to `SLACK_CHANNEL` with a note saying why, an error is logged
    (`slack.channel_unusable`) and counted (`remediator_notifications_total{result="fallback"}`), and
    the rule's channel is tried again 10 minutes later (see [Slack](../concepts/slack.md))
    """
    max_targets: BrakeSpec | None = None
    """the blast-radius brake, `{count: N, within: DURATION}`: the rule acts on at most N distinct targets
    within the sliding window; the job of each further target is held (`held:brake`) until an operator
    releases it, and people are told once (see [The blast-radius brake](../how-to/brake.md)). Every
    distinct target admitted to run counts, whatever the outcome, dry runs included; manual replays do
    not. `count` ≥ 1, `within` a duration with a unit, at most `7d`. A rule turns a default's brake off
    with `max_targets: {enabled: false}`. `simulate` shows, per alert, which target of the payload it is
    and whether it would be held. Unset: no brake (the shipped `rules.yaml` sets `{count: 20, within:
    10m}` in `defaults:`)
    """

    @property
    def brake(self) -> tuple[int, float] | None:
        """(count, within seconds) of an enabled brake, or None."""
        spec = self.max_targets
        if spec is None or not spec.enabled or spec.count is None or spec.within is None:
            return None
        return spec.count, spec.within

    @property
    def needs_approval(self) -> bool:
        return self.approval is not None and self.approval.required


def field_type(info: FieldInfo) -> Any:
    """The field's type with its validators (``Annotated`` metadata), not just the bare type."""
    if not info.metadata:
        return info.annotation
    return Annotated[(info.annotation, *info.metadata)]


def _overrides(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s fields for ``create_model``, each optional: unset (None) unless written."""
    return {
        name: (field_type(info) | None, Field(default=None, description=info.description))
        for name, info in model.model_fields.items()
    }


def _page_mention(value: str) -> str:
    # Checked like ``escalate``: a word Slack would not turn into a mention notifies nobody.
    if value and (problem := escalate_problem(value)):
        raise ValueError(problem.replace("escalate:", "page.slack:", 1))
    return value


class PageSpec(_Strict):
    """People as a step (``page:``): a Slack mention and/or a PagerDuty incident, with the
    chain's results so far. It ends the chain ``escalated``."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    slack: Annotated[str, AfterValidator(_page_mention)] = ""
    """A Slack mention, checked like ``escalate`` (``@here``, ``<!subteam^S0ONCALL>``, ``<@U...>``)."""
    pagerduty: bool = False
    """Trigger a PagerDuty incident (needs ``REMEDIATOR_PAGERDUTY_ROUTING_KEY``)."""

    @model_validator(mode="after")
    def _someone(self) -> PageSpec:
        if not self.slack and not self.pagerduty:
            raise ValueError("page: name someone: slack: '@here' (a mention) and/or pagerduty: true")
        return self


class StepSpec(_Strict):
    """One step of a rule's ``steps:``: a handler with its params, or ``page:`` (people)."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    handler: str | None = None
    """The handler this step runs (or ``page:`` instead)."""
    params: dict[str, Any] = Field(default_factory=dict)
    """The handler's params, templated like a rule's."""
    timeout: RuleDuration | None = Field(default=None, gt=0)
    """Seconds before this step's handler is stopped; within the rule's ``timeout`` (its default)."""
    on_success: Literal["next", "done", "probe"] | None = None
    """``next``: run the next step; ``done``: end ``succeeded``; ``probe``: end ``succeeded``
    if the rule's probe passes, else run the next step. Default: ``probe`` with a probe, else ``next``."""
    on_failure: Literal["stop", "next"] = "stop"
    """``stop``: end ``failed``; ``next``: run the next step."""
    page: PageSpec | None = None
    """People instead of a handler: ends the chain ``escalated``."""

    @model_validator(mode="after")
    def _one_kind(self) -> StepSpec:
        if (self.handler is None) == (self.page is None):
            raise ValueError("a step has either handler: (with params:) or page:, not both nor neither")
        if self.page is not None:
            written = sorted(self.model_fields_set & {"params", "timeout", "on_success", "on_failure"})
            if written:
                raise ValueError(f"a page: step ends the chain; {', '.join(written)} belong to handler steps")
        return self


class _RuleFields(_Strict):
    """What only a rule says: its name, what it matches, what it runs on what."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    name: str
    """unique; lowercase letters, digits, `.`, `_`, `-`"""
    description: str = ""
    """free text"""
    enabled: bool = True
    """`false`: the rule is loaded and checked, and matches nothing"""
    matchers: list[str] = Field(min_length=1)
    """Alertmanager matchers: `label="v"`, `!=`, `=~`, `!~` (regexes fully anchored, RE2: see [Regular
    expressions](#regular-expressions)), quoted values with `\\"`, `\\\\`, `\\n` escapes (any other
    backslash is itself, as in Alertmanager: `pod=~"web-\\d+"`); all must match
    """
    handler: str | None = None
    """a registered handler (see [Handlers](handlers.md)): the rule's one step (required unless `steps:`)"""
    steps: list[StepSpec] | None = None
    """instead of `handler:`, several steps run one after another on the target, each a handler with its
    `params`, `timeout`, `on_success` (`next`, `done`, `probe`) and `on_failure` (`stop`, `next`), or a
    last `page:` step (see [Steps](#steps))
    """
    target: str
    """template naming what is repaired: the key of the lease, cooldown and circuit"""
    params: dict[str, Any] = Field(default_factory=dict)
    """the handler's params, templated (with `steps:`, each step has its own)"""
    inhibited_by: list[str] = Field(default_factory=list)
    """matchers; while another alert matching all of them fires, the job waits (up to `inhibit_wait`, then
    it ends `skipped:inhibited`)
    """
    probe: ProbeSpec | None = None
    """an HTTP check of what users see, before and after the handler (see [Probes](#probes)); a rule key,
    not a policy key: it cannot be set in `defaults:`
    """
    resolve: ResolveSpec | None = None
    """the pod an alert names, resolved to the workload that owns it before the lease (see [Resolving
    a pod to its owner](#resolving-a-pod-to-its-owner))
    """
    context: list[ContextEntry] = Field(default_factory=list, max_length=MAX_ENTRIES)
    """entries gathered before acting and shown in the Slack thread, the approval request, the event and
    the console: each a one-key mapping from its kind (`kubernetes.logs`, `kubernetes.events`,
    `prometheus.query`) to its params, templated; at most 10; see [Context in the
    thread](../how-to/context.md)
    """

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _RULE_NAME.match(value):
            raise ValueError("must be lowercase letters, digits, '.', '_' or '-' (max 63)")
        return value

    @model_validator(mode="after")
    def _handler_or_steps(self) -> _RuleFields:
        if (self.handler is None) == (self.steps is None):
            raise ValueError("a rule has either handler: (one step) or steps: (a list), not both nor neither")
        if self.steps is not None:
            if "params" in self.model_fields_set:
                raise ValueError("params: belongs to each step of steps:, not to the rule")
            if not self.steps:
                raise ValueError("steps: list at least one step")
            if self.steps[0].page is not None:
                raise ValueError("steps: the first step runs a handler; paging alone is Alertmanager's job")
            for index, step in enumerate(self.steps[:-1]):
                if step.page is not None:
                    raise ValueError(
                        f"steps.{index}.page: a page: step ends the chain: make it the last step"
                    )
            for index, step in enumerate(self.steps):
                if step.on_success == "probe" and self.probe is None:
                    raise ValueError(f"steps.{index}.on_success: probe needs the rule's probe:")
        return self

    def policy(self, defaults: Policy) -> Policy:
        """``defaults`` updated with the policy fields this rule sets (``null`` sets none)."""
        values = dict(defaults)  # the field values themselves (a nested model stays one)
        for name in Policy.model_fields:
            if (value := getattr(self, name)) is not None:
                values[name] = value
        return Policy.model_construct(**values)  # each value is validated already


# RuleSpec: the rule's own fields, then every Policy field again, optional. mypy sees only
# the former (a class made at run time has no static type); code reads the policy fields
# through ``spec.policy(defaults)``.
if TYPE_CHECKING:
    RuleSpec = _RuleFields
else:
    RuleSpec = create_model(
        "RuleSpec",
        __base__=_RuleFields,
        __module__=__name__,
        __doc__="One rule as written in the file; unset knobs come from ``defaults``.",
        **_overrides(Policy),
    )


class Defaults(Policy):
    """The file's ``defaults:``: a Policy under the name its errors show (``defaults: Input
    should be a valid dictionary or instance of Defaults``)."""

    def policy(self) -> Policy:
        """The same values as a plain Policy."""
        return Policy.model_construct(self.model_fields_set, **dict(self))


_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HH_MM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
MAX_WINDOW = 7 * 86400.0


_FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _weekday(value: Any) -> Any:
    """``mon`` or ``Monday`` (any case), kept as ``mon``."""
    text = value.strip().lower() if isinstance(value, str) else ""
    if text in _WEEKDAYS or text in _FULL_DAYS:
        return text[:3]
    raise ValueError(f"{value!r} is not a weekday: use mon, tue, wed, thu, fri, sat or sun")


class MaintenanceWindowSpec(_Strict):
    """A recurring window (``maintenance_windows:``) that holds the jobs it matches."""

    name: str
    matchers: list[str] = Field(default_factory=list)
    weekdays: Annotated[tuple[Annotated[str, BeforeValidator(_weekday)], ...], BeforeValidator(_a_list)] = (
        _WEEKDAYS
    )
    start: str
    duration: RuleDuration = Field(gt=0, le=MAX_WINDOW)
    time_zone: str = "UTC"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _RULE_NAME.match(value):
            raise ValueError("must be lowercase letters, digits, '.', '_' or '-' (max 63)")
        return value

    @field_validator("start")
    @classmethod
    def _start(cls, value: str) -> str:
        if not _HH_MM.match(value):
            raise ValueError(f"{value!r} is not a time of day: write HH:MM, e.g. 02:30")
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Paris, UTC)") from exc
        return value


class RulesFile(_Strict):
    defaults: Defaults = Defaults()
    concurrency_limits: dict[str, Annotated[int, Field(ge=1)]] = Field(default_factory=dict)
    maintenance_windows: list[MaintenanceWindowSpec] = Field(default_factory=list)
    rules: list[RuleSpec] = Field(default_factory=list)

    @field_validator("maintenance_windows")
    @classmethod
    def _unique(cls, value: list[MaintenanceWindowSpec]) -> list[MaintenanceWindowSpec]:
        names = [window.name for window in value]
        if twice := sorted({name for name in names if names.count(name) > 1}):
            raise ValueError(f"duplicate window name {twice[0]!r}")
        return value
