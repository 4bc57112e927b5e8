"""The admin commands' tests run with the test token and no URL or token file from the
environment they were started in."""

from __future__ import annotations

import pytest

from tests.support.admin import ADMIN_TOKEN


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMEDIATOR_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.delenv("REMEDIATOR_ADMIN_TOKEN_FILE", raising=False)
    monkeypatch.delenv("REMEDIATOR_URL", raising=False)
