"""Every Redis key the service uses, built here and nowhere else.

Keys that one script or transaction touches together share a hash tag
(the part in braces) so the store also works on Redis Cluster.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    prefix: str = "remediator"

    # queue: a stream per rule, their consumer group, deferred jobs and dead letters share {q}
    @property
    def stream(self) -> str:
        # the one stream of every job before per-rule streams (issue 29): still read while
        # it holds jobs (a rolling upgrade), removed once empty and long unread
        return f"{self.prefix}:{{q}}:jobs"

    @property
    def rule_streams(self) -> str:
        # the prefix of a rule's stream: ``rule_streams + rule`` (rule names are
        # [a-z0-9._-]); the scripts build it from here
        return f"{self.prefix}:{{q}}:jobs:"

    def rule_stream(self, rule: str) -> str:
        return self.rule_streams + rule

    @property
    def streams(self) -> str:
        # the rules that have a stream (a sorted set, every score 0: in name order)
        return f"{self.prefix}:{{q}}:streams"

    @property
    def turn(self) -> str:
        # the rule whose stream was taken from last: the next take starts after it
        return f"{self.prefix}:{{q}}:turn"

    @property
    def bell(self) -> str:
        # a short stream rung when a rule's stream is made: a worker waiting on the
        # streams it knew wakes for the new one
        return f"{self.prefix}:{{q}}:bell"

    @property
    def group(self) -> str:
        return f"{self.prefix}-workers"

    @property
    def deferred(self) -> str:
        return f"{self.prefix}:{{q}}:deferred"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}:{{q}}:dead"

    @property
    def held(self) -> str:
        # event id -> its member of the deferred zset, for jobs held by a pause or window
        return f"{self.prefix}:{{q}}:held"

    def intake(self, status: str, rule: str, episode: str) -> str:
        # one per (rule, alert status, firing episode) queued, running or done: duplicates
        # are collapsed by the intake script, so it shares the stream's {q}
        return f"{self.prefix}:{{q}}:intake:{status}:{rule}:{episode}"

    def lease(self, target: str) -> str:
        return f"{self.prefix}:lease:{{{target}}}"

    def interrupted(self, event_id: str) -> str:
        return f"{self.prefix}:interrupted:{event_id}"

    def slots(self, group: str) -> str:
        return f"{self.prefix}:slots:{{{group}}}"

    def cooldown(self, rule: str, target: str) -> str:
        return f"{self.prefix}:cooldown:{{{rule}|{target}}}"

    def attempts(self, rule: str, target: str) -> str:
        return f"{self.prefix}:attempts:{{{rule}|{target}}}"

    def circuit(self, rule: str, target: str) -> str:
        return f"{self.prefix}:circuit:{{{rule}|{target}}}"

    def episode(self, rule: str, episode: str) -> str:
        return f"{self.prefix}:episode:{rule}:{episode}"

    def resolution(self, rule: str, episode: str) -> str:
        return f"{self.prefix}:resolved:{rule}:{episode}"

    @property
    def firing_index(self) -> str:
        return f"{self.prefix}:{{firing}}:index"

    @property
    def firing_alerts(self) -> str:
        return f"{self.prefix}:{{firing}}:alerts"

    @property
    def pause(self) -> str:
        return f"{self.prefix}:pause"

    @property
    def pauses(self) -> str:
        # scoped pauses: pause id -> JSON (the global pause is ``pause``)
        return f"{self.prefix}:pauses"

    @property
    def pauses_version(self) -> str:
        # bumped by every change to the pauses: a job is admitted only against the current list
        return f"{self.prefix}:pauses:version"

    @property
    def job_states(self) -> str:
        # event id -> JobState JSON; shares {audit}: recording the outcome removes the entry
        return f"{self.prefix}:{{audit}}:jobs"

    @property
    def audit(self) -> str:
        return f"{self.prefix}:{{audit}}:stream"

    def event(self, event_id: str) -> str:
        # shares {audit} with the stream: recording an event updates both atomically
        return f"{self.prefix}:{{audit}}:event:{event_id}"

    def thread(self, rule: str, target: str) -> str:
        return f"{self.prefix}:thread:{{{rule}|{target}}}"

    # approval requests: one script touches the scope, the request and the index, so all
    # of them share {approvals} (little traffic: a few requests per incident)
    def approval_scope(self, scope: str) -> str:
        return f"{self.prefix}:{{approvals}}:scope:{scope}"

    def approval(self, event_id: str) -> str:
        return f"{self.prefix}:{{approvals}}:request:{event_id}"

    def approval_decision(self, event_id: str) -> str:
        return f"{self.prefix}:{{approvals}}:decision:{event_id}"

    def approval_message(self, event_id: str) -> str:
        return f"{self.prefix}:{{approvals}}:message:{event_id}"

    @property
    def approvals(self) -> str:
        return f"{self.prefix}:{{approvals}}:index"

    # failed credentials (issue 24): one script counts an address and a name together, so
    # they share {auth} (little traffic: failures only)
    def failures(self, key: str) -> str:
        return f"{self.prefix}:{{auth}}:fail:{key}"

    def failures_told(self, key: str) -> str:
        return f"{self.prefix}:{{auth}}:told:{key}"

    def good_address(self, name: str, address: str) -> str:
        return f"{self.prefix}:{{auth}}:good:{name}:{address}"

    # console sessions: a session and its credential's index share {sessions}
    def session(self, session_id: str) -> str:
        return f"{self.prefix}:{{sessions}}:session:{session_id}"

    def sessions_of(self, name: str) -> str:
        return f"{self.prefix}:{{sessions}}:of:{name}"

    # the store's generation marker (issue 24): never expires; a wipe takes it
    @property
    def generation(self) -> str:
        return f"{self.prefix}:generation"

    def generation_reported(self, marker_id: str) -> str:
        return f"{self.prefix}:generation:reported:{marker_id}"

    # the blast-radius brake per rule (max_targets): one script touches a rule's three
    # keys, so they share {brake:<rule>}
    def brake_counted(self, rule: str) -> str:
        # target -> when it was last counted (ms), pruned to the window
        return f"{self.prefix}:{{brake:{rule}}}:counted"

    def brake_held(self, rule: str) -> str:
        # event id -> HeldJob JSON, until an operator releases it (or it ends otherwise)
        return f"{self.prefix}:{{brake:{rule}}}:held"

    def brake_released(self, rule: str) -> str:
        # event ids released by an operator, until each job passes the brake
        return f"{self.prefix}:{{brake:{rule}}}:released"
