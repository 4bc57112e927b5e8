"""The parts of one running service, shared by the HTTP routes (one owner: the app)."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from remediator.api.auth import Credentials
from remediator.api.limits import FailureLimit
from remediator.api.pacing import IntakePacing
from remediator.handling.context import Resources
from remediator.intake import Intake
from remediator.metrics import Metrics
from remediator.notify.notice import Notifier
from remediator.rules.holder import RulesHolder
from remediator.settings import Settings
from remediator.store.base import Store
from remediator.worker.generation import GenerationWatch


@dataclass
class Service:
    settings: Settings
    metrics: Metrics
    rules: RulesHolder
    store: Store
    notifier: Notifier
    resources: Resources
    intake: Intake
    replica: str
    limits: FailureLimit
    credentials: Credentials = field(default_factory=Credentials)  # replaced when its file changes
    generation: GenerationWatch | None = None  # what this replica saw of the store's generation
    pacing: IntakePacing = field(default_factory=lambda: IntakePacing(0))  # the webhook's share


SERVICE: web.AppKey[Service] = web.AppKey("service", Service)
