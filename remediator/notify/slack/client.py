"""Slack delivery: one thread per (rule, target) incident, or flat webhook messages.

What to say is decided here; how it leaves is the transport's (``transports/``: the bot
API, the incoming webhook, or a recording one in tests). A transport that cannot thread
(``threads`` false) gets flat, self-contained messages and no updates.

``send`` only appends to a bounded queue and returns; one sender task posts in
order, so a reply always waits for its parent's ``ts``. Transport retries are
slack_sdk's retry handlers (429 + Retry-After, 5xx and connection errors, all
bounded); a message that still fails is counted and logged once, and the
sender moves on (``retry.py``). Nothing here ever blocks or fails a remediation, and no lease
is held while Slack is slow: the pipeline only calls ``send``.

Threads. The parent is posted when a remediation starts and claimed in the
store under (rule, target) for the rule's cooldown (at least ``min_thread_ttl``),
counted from that moment. Replies (outcome, another attempt, escalation,
resolved) find the parent in memory (same event, same process) or in the store
(any replica). The cooldown starts only at the outcome, so the key is gone by
the time a new firing may run again: a new firing after the cooldown starts a
new thread, while failed attempts and the resolution that follow soon after
land in the same one. A ``resolved`` with no thread (we never acted, or the
thread expired) is not posted. If two replicas race to post the first parent of
one incident (only possible while Slack is slower than a whole run), both are
posted; the store keeps one and every later reply goes there.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import structlog

from remediator.errors import StoreUnavailable
from remediator.metrics import Metrics
from remediator.notify.notice import SERVICE_NOTICES, Notice
from remediator.notify.outbox import Outbox
from remediator.notify.slack import approvals, messages
from remediator.notify.slack.blocks import Message
from remediator.notify.slack.messages import with_fallback_note
from remediator.notify.slack.threads import Threads
from remediator.notify.slack.transports import SlackRefused, Transport, transport_for
from remediator.settings import Settings
from remediator.store.base import Store

# Notices that update the thread's first message with the incident's latest state.
HEADER_KINDS = frozenset({"outcome", "escalated", "resolved"})
# Slack's answers for a channel the bot cannot post to: the rule's own channel then falls
# back to the default one, for UNUSABLE_FOR seconds before it is tried again.
CHANNEL_ERRORS = frozenset({"not_in_channel", "channel_not_found", "is_archived"})
UNUSABLE_FOR = 600.0
log = structlog.get_logger("remediator.notify.slack.client")


class SlackNotifier:
    """Threads where the transport can (the bot API), flat messages where it cannot."""

    def __init__(
        self,
        *,
        settings: Settings,
        session: aiohttp.ClientSession | None,
        store: Store,
        metrics: Metrics,
        transport: Transport | None = None,
        queue_size: int = 1000,
        close_timeout: float = 5.0,
        message_timeout: float = 120.0,
        retries: int = 3,
        max_retry_after: float = 30.0,
        min_thread_ttl: float = 60.0,
    ) -> None:
        if transport is None:
            if session is None:
                raise ValueError("SlackNotifier needs a session or a transport")
            transport = transport_for(settings, session, retries=retries, max_retry_after=max_retry_after)
        self._transport = transport
        self._metrics = metrics
        self._message_timeout = message_timeout
        self._threads = Threads(store.threads, min_thread_ttl)
        self._store = store
        self._channel = settings.slack_channel or ""
        self._unusable: dict[str, float] = {}  # a rule's channel -> when to try it again (monotonic)
        self.mode = transport.mode
        self._outbox = Outbox[Notice](
            name="slack-sender",
            deliver=self._deliver,
            drop=self._drop,
            queue_size=queue_size,
            close_timeout=close_timeout,
        )
        self._dropping = 0
        self._not_before = 0.0  # monotonic time before which Slack asked us not to post

    # ---- the Notifier protocol ------------------------------------------------------
    async def start(self) -> None:
        if not self._outbox.started:
            self._outbox.start()
            log.info("slack.started", mode=self.mode, channel=self._channel or None)

    def send(self, notice: Notice) -> None:
        """Queue ``notice`` and return at once; never raises."""
        try:
            outbox = self._outbox
            if self._dropping and not outbox.closed and len(outbox) < outbox.queue_size // 2:
                log.warning("slack.queue_recovered", dropped=self._dropping)
                self._dropping = 0
            outbox.put(notice)
        except Exception as exc:  # a notifier must never break the pipeline
            log.error("slack.enqueue_failed", error=self._redact(repr(exc)))

    async def close(self) -> None:
        """Deliver what is queued for up to ``close_timeout`` seconds, then give up."""
        await self._outbox.close()

    # ---- the sender -------------------------------------------------------------------
    async def _deliver(self, notice: Notice) -> None:
        """Post one notice (after any wait Slack asked for); any failure is counted and
        logged here, once."""
        wait = self._not_before - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        try:
            async with asyncio.timeout(self._message_timeout):
                result = await self._post_notice(notice)
        except Exception as exc:
            self._metrics.notifications.labels("failed").inc()
            log.warning(
                "slack.delivery_failed",
                kind=notice.kind,
                rule=notice.rule,
                target=notice.target,
                event_id=notice.event_id,
                error=self._describe(exc),
            )
            return
        self._metrics.notifications.labels(result).inc()

    async def _post_notice(self, notice: Notice) -> str:
        if notice.kind in ("approval", "approval_decided"):
            return await self._post_approval(notice)
        if notice.kind in SERVICE_NOTICES:
            await self._post(messages.parent(notice))
            return "sent"
        channel = self._channel_for(notice)
        thread = await self._threads.find(notice)
        if notice.kind == "resolved" and thread is None:
            return "skipped"  # nothing of ours to close: we never acted on this incident
        if not self._transport.threads:
            await self._post(messages.flat(notice), None, channel)
            thread = thread or await self._threads.claim(notice, f"webhook:{notice.event_id}")
        elif thread is None:
            thread = await self._threads.claim(
                notice, await self._post(messages.parent(notice), None, channel)
            )
            if notice.kind == "context":  # the parent names the incident; the context follows
                await self._post(messages.reply(notice), thread, channel)
        elif notice.kind == "started" and not (notice.after_failure or self._threads.failed_last(thread)):
            self._threads.remember(notice.event_id, thread)  # approved or waited: not another attempt
            return "skipped"
        else:
            await self._post(messages.reply(notice), thread, channel)
            await self._update_header(thread, notice, channel)
        if notice.kind in ("outcome", "escalated"):
            self._threads.outcome(thread, notice.outcome or "failed")
        self._threads.remember(notice.event_id, thread)
        return "sent"

    def _channel_for(self, notice: Notice) -> str:
        """The rule's channel, or the default one (no channel of its own, or Slack said the
        bot cannot post there a short while ago)."""
        wanted = notice.channel or self._channel
        if wanted != self._channel and self._unusable.get(wanted, 0.0) > time.monotonic():
            return self._channel
        return wanted

    async def _update_header(self, thread: str, notice: Notice, channel: str) -> None:
        """The thread's first message shows the incident's latest state (never a parent
        that carries an approval's buttons and decision). A failure is logged, not fatal:
        the reply is posted."""
        if notice.kind not in HEADER_KINDS or self._threads.is_approval_parent(thread):
            return
        try:
            await self._update(self._transport.id_of(channel), thread, messages.latest_header(notice))
        except Exception as exc:
            log.warning(
                "slack.header_not_updated", thread=thread, kind=notice.kind, error=self._describe(exc)
            )

    async def _post_approval(self, notice: Notice) -> str:
        """The request with its buttons (starting the thread, or in it), kept in the store so
        whichever replica records the decision can update it; a decision updates it."""
        approval = notice.approval
        if approval is None:
            return "skipped"
        thread = await self._threads.find(notice)
        channel = self._channel_for(notice)
        if not self._transport.threads:  # nothing to update: the decision is a new message
            await self._post(approvals.approval_message(notice, parent=True), None, channel)
            return "sent"
        if notice.kind == "approval_decided":
            if not approval.message_ts:
                if thread is None:
                    return "skipped"
                await self._post(approvals.approval_message(notice, parent=False), thread, channel)
                return "sent"
            message = approvals.approval_message(notice, parent=approval.message_ts == thread)
            await self._update(approval.channel, approval.message_ts, message)
            return "sent"
        if thread is None:
            ts = await self._post(approvals.approval_message(notice, parent=True), None, channel)
            thread = await self._threads.claim(notice, ts)
            if thread == ts:
                self._threads.approval_parent(ts)
        else:
            ts = await self._post(approvals.approval_message(notice, parent=False), thread, channel)
        self._threads.remember(notice.event_id, thread)
        try:
            await self._store.approvals.set_approval_message(
                approval.event_id, self._transport.id_of(channel), ts
            )
        except StoreUnavailable as exc:  # the buttons work anyway; a decision cannot update it
            log.warning("slack.approval_message_not_kept", event_id=approval.event_id, error=str(exc))
        return "sent"

    # ---- through the transport ----------------------------------------------------------
    async def _post(self, message: Message, thread_ts: str | None = None, channel: str | None = None) -> str:
        """Post one message to ``channel`` (None: the default one); returns its ``ts`` ("" where
        the transport gives none). A rule's channel the bot cannot post to falls back to the
        default one, saying so."""
        try:
            return await self._transport.post(message, thread_ts, channel)
        except SlackRefused as exc:
            if not channel or channel == self._channel or exc.error not in CHANNEL_ERRORS:
                self._note_rate_limit(exc)
                raise
            error = exc.error
            self._channel_unusable(channel, error)
        try:
            return await self._transport.post(with_fallback_note(message, channel, error), thread_ts)
        except SlackRefused as again:
            self._note_rate_limit(again)
            raise

    def _channel_unusable(self, channel: str, error: str) -> None:
        """Said once per episode: which channel, why, what to do; the default one is used meanwhile."""
        if self._unusable.get(channel, 0.0) <= time.monotonic():
            self._metrics.notifications.labels("fallback").inc()
            log.error(
                "slack.channel_unusable",
                channel=channel,
                error=error,
                fallback=self._channel,
                message=f"Slack answered {error} for {channel} (a rule's slack_channel): invite the bot "
                f"to it (/invite @<the bot>) or fix the rule's slack_channel; posting to {self._channel} "
                f"meanwhile, and trying {channel} again in {UNUSABLE_FOR:g}s",
            )
        self._unusable[channel] = time.monotonic() + UNUSABLE_FOR

    async def _update(self, channel: str, ts: str, message: Message) -> None:
        try:
            await self._transport.update(channel, ts, message)
        except SlackRefused as exc:
            self._note_rate_limit(exc)
            raise

    def _note_rate_limit(self, exc: SlackRefused) -> None:
        """Still rate limited after the retries: hold the next message until Slack allows."""
        if exc.retry_after is not None:
            self._not_before = time.monotonic() + exc.retry_after

    # ---- accounting ---------------------------------------------------------------------
    def _drop(self, notices: list[Notice], reason: str) -> None:
        if not notices:
            return
        self._metrics.notifications.labels("dropped").inc(len(notices))
        if reason == "queue_full":
            self._dropping += 1
            if self._dropping > 1:  # one line per overflow episode, not one per notice
                return
        log.warning(
            "slack.dropped",
            reason=reason,
            notices=len(notices),
            kinds=sorted({n.kind for n in notices}),
            event_ids=[n.event_id for n in notices[:10]],
        )

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, SlackRefused):
            return self._redact(str(exc))
        if isinstance(exc, TimeoutError):
            return f"no answer within {self._message_timeout:g}s"
        return self._redact(f"{type(exc).__name__}: {exc}")

    def _redact(self, text: str) -> str:
        for secret in self._transport.secrets:
            text = text.replace(secret, "[redacted]")
        return text
