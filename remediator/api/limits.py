"""Failed credentials: after too many, the caller is refused with 429 and Retry-After.

Counted per client address (``api/clients.py``) and per presented name (the webhook's
basic-auth user), in a sliding window, across replicas through the store's
``credentials`` part; while the store is down, each replica counts in memory. A refused
caller is answered 429 before its credential is checked, so a right guess looks like a
wrong one. A refused *name* still lets in an address it recently authenticated from (an
attacker cannot lock Alertmanager out by guessing its user's password from elsewhere).

Each replica remembers what the store told it (which keys are refused, until when), so
an accepted request costs no store call. A replica learns of a refusal at the first
failure it counts itself: until then it checks credentials from that caller as usual,
so with R replicas at most R - 1 more credentials are checked per refusal.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

import structlog

from remediator.api.clients import address_key
from remediator.api.errors import ApiError
from remediator.errors import StoreUnavailable
from remediator.metrics import Metrics
from remediator.store.base import CredentialFailures
from remediator.store.values import Tally

log = structlog.get_logger("remediator.api.limits")
Surface = Literal["webhook", "admin", "console"]
REMEMBER_GOOD = 7 * 86400.0  # how long an address a name authenticated from stays good
STORE_RETRY = 5.0  # after the store failed, count in memory this long before trying it again
_LOCAL_CAP = 10_000  # keys and good addresses each replica keeps in mind
K = TypeVar("K", str, tuple[str, str])


@dataclass(frozen=True)
class Caller:
    """Who presents a credential: the client's address, and the name it presents, if any."""

    address: str
    name: str | None = None
    shown: str = ""  # what the log may say of the name (a presented name may be a pasted secret)

    def keys(self) -> list[str]:
        keys = [f"address:{address_key(self.address)}"]
        if self.name is not None:
            keys.append(
                f"name:{hashlib.sha256(self.name.encode('utf-8', 'surrogateescape')).hexdigest()[:32]}"
            )
        return keys


class Refused(ApiError):
    """429: too many failed credentials from this address or for this name."""

    def __init__(self, seconds: float) -> None:
        wait = max(1, math.ceil(seconds))
        super().__init__(
            429,
            "too many failed credentials",
            f"too many wrong credentials from this address or for this name: retry in {wait}s",
            headers={"Retry-After": str(wait)},
        )
        self.seconds = wait


class FailureLimit:
    """One per replica: counts failures in ``store`` (``fallback`` while it is down)."""

    def __init__(
        self,
        store: CredentialFailures,
        fallback: CredentialFailures,
        metrics: Metrics,
        *,
        limit: int,
        window: float,
    ) -> None:
        self._store, self._fallback, self._metrics = store, fallback, metrics
        self.limit, self.window = limit, window
        self._refused: dict[str, float] = {}  # key -> refused until (monotonic), as learned
        self._good: dict[tuple[str, str], float] = {}  # (name, address) -> good until (monotonic)
        self._store_down_until = 0.0

    async def check(self, surface: Surface, caller: Caller) -> None:
        """Raise ``Refused`` while this replica knows the caller is refused (no store call,
        unless a refused name must be asked whether this address is one of its good ones)."""
        now = time.monotonic()
        address, *name = caller.keys()
        left = self._left(address, now)
        by_name = self._left(name[0], now) if name else 0.0
        if by_name > left and not await self._known_good(caller):
            left = by_name
        if left > 0:
            self._refuse(surface, left)

    async def failed(self, surface: Surface, caller: Caller) -> None:
        """Count a wrong credential. Raise ``Refused`` if the caller is refused now (the
        route answers 401 otherwise); the failure that starts a refusal is logged once."""
        self._metrics.auth_failures.labels(surface).inc()
        keys = caller.keys()
        tallies = await self._count(keys)
        now = time.monotonic()
        for key, tally in zip(keys, tallies, strict=True):
            if tally.refused_for > 0:
                self._learn(key, now + tally.refused_for)
        left = tallies[0].refused_for
        if len(tallies) > 1 and tallies[1].refused_for > left and not await self._known_good(caller):
            left = tallies[1].refused_for
        if any(t.first for t in tallies):
            self._report(surface, caller, keys, tallies)
        log.debug("auth.failed", surface=surface, address=caller.address, failures=tallies[0].failures)
        if left > 0:
            self._refuse(surface, left)

    async def succeeded(self, caller: Caller) -> None:
        """A right credential with a name: its address stays good for that name."""
        if caller.name is None:
            return
        now, pair = time.monotonic(), (caller.name, caller.address)
        if self._good.get(pair, 0.0) > now:
            return  # known here: no store call on the webhook's hot path
        self._remember(self._good, pair, now + REMEMBER_GOOD)
        if now >= self._store_down_until:
            try:
                await self._store.remember_good(caller.name, caller.address, REMEMBER_GOOD)
            except StoreUnavailable:
                self._store_down_until = now + STORE_RETRY

    # ---- inside ------------------------------------------------------------------------
    async def _count(self, keys: Sequence[str]) -> list[Tally]:
        now = time.monotonic()
        if now >= self._store_down_until:
            try:
                tallies = await self._store.count_failure(keys, self.window, self.limit)
            except StoreUnavailable as exc:
                if self._store_down_until == 0.0:
                    log.warning(
                        "auth.store_unavailable",
                        error=str(exc),
                        message="failed credentials are counted on this replica only until the store is back",
                    )
                self._store_down_until = now + STORE_RETRY
            else:
                if self._store_down_until:
                    log.info("auth.store_back", message="failed credentials are counted in the store again")
                self._store_down_until = 0.0
                return tallies
        return await self._fallback.count_failure(keys, self.window, self.limit)

    async def _known_good(self, caller: Caller) -> bool:
        if caller.name is None:
            return False
        pair = (caller.name, caller.address)
        if self._good.get(pair, 0.0) > time.monotonic():
            return True
        try:
            return await self._store.known_good(*pair)
        except StoreUnavailable:
            return False

    def _left(self, key: str, now: float) -> float:
        until = self._refused.get(key)
        if until is None:
            return 0.0
        if until <= now:
            del self._refused[key]
            return 0.0
        return until - now

    def _learn(self, key: str, until: float) -> None:
        self._remember(self._refused, key, until)

    @staticmethod
    def _remember(table: dict[K, float], key: K, until: float) -> None:
        if len(table) >= _LOCAL_CAP:  # forget the expired, then the oldest learned
            now = time.monotonic()
            for old in [k for k, v in table.items() if v <= now] or list(table)[: _LOCAL_CAP // 10]:
                del table[old]
        table[key] = until

    def _refuse(self, surface: Surface, seconds: float) -> None:
        self._metrics.auth_refused.labels(surface).inc()
        raise Refused(seconds)

    def _report(self, surface: Surface, caller: Caller, keys: list[str], tallies: list[Tally]) -> None:
        by = ["address", "name"][: len(keys)]
        log.warning(
            "auth.failures_limited",
            surface=surface,
            address=caller.address,
            name=caller.shown if caller.name is not None else None,
            refused=[b for b, t in zip(by, tallies, strict=True) if t.refused_for > 0],
            failures=max(t.failures for t in tallies),
            window_seconds=self.window,
            retry_after_seconds=max(1, math.ceil(max(t.refused_for for t in tallies))),
            message=(
                f"{self.limit} failed credentials within {self.window:g}s: refused with 429 "
                "until they age out; further failures are counted in remediator_auth_failures_total, "
                "not logged"
            ),
        )
