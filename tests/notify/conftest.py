"""Fixtures the notifiers' tests share: local servers speaking Slack's and PagerDuty's
APIs, and the test module's ``RULES`` written to a file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.pagerduty_server import PagerDutyServer
from tests.support.slack_server import SlackServer


@pytest.fixture
async def slack() -> AsyncIterator[SlackServer]:
    server = await SlackServer().start()
    yield server
    await server.close()


@pytest.fixture
async def pagerduty() -> AsyncIterator[PagerDutyServer]:
    server = await PagerDutyServer().start()
    yield server
    await server.close()


@pytest.fixture
def rules_path(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(request.module.RULES)
    return path
