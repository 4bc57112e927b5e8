"""Fixtures the Kubernetes handlers' tests share: the kmock cluster the handlers' client
talks to over real HTTP, and the service's resources (its HTTP session and the client)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from remediator import Resources
from tests.support.kube import Cluster, app_resources, kube_env


@pytest.fixture
async def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Cluster]:
    async with kube_env(tmp_path, monkeypatch) as cluster:  # enforces the shipped Role
        yield cluster


@pytest.fixture
async def resources() -> AsyncIterator[Resources]:
    async with app_resources() as resources:
        yield resources
