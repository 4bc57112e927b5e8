"""The parts of one running service, shared by the HTTP routes (one owner: the app)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from remediator.context import Resources
from remediator.intake import Intake
from remediator.metrics import Metrics
from remediator.notify import Notifier
from remediator.pipeline import Pipeline
from remediator.reloading import RulesHolder
from remediator.settings import Settings
from remediator.store import Store


@dataclass
class Service:
    settings: Settings
    metrics: Metrics
    rules: RulesHolder
    store: Store
    notifier: Notifier
    resources: Resources
    intake: Intake
    pipeline: Pipeline
    replica: str


SERVICE: web.AppKey[Service] = web.AppKey("service", Service)
