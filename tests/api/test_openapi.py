"""The OpenAPI document: it lists exactly the app's routes, and schemathesis, generating
requests from it against the live app, finds no 5xx and no response that breaks it."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.checks import negative_data_rejection, positive_data_acceptance
from schemathesis.config import SchemathesisConfig

from remediator.api import openapi
from remediator.app import create_app
from tests.support.admin import (
    ADMIN_TOKEN,
    Calls,
    ServedApp,
    make_settings,
    serve_in_thread,
    write_rules,
)

# Bounded so the run stays well under a minute; raise it locally to search harder.
MAX_EXAMPLES = int(os.environ.get("REMEDIATOR_FUZZ_EXAMPLES", "12"))


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApp]:
    rules = write_rules(tmp_path_factory.mktemp("openapi") / "rules.yaml")
    # One token for both the webhook and the admin API, so one header authorises every call.
    # schemathesis sends wrong credentials by the dozen and expects 401 for each: the limit
    # of failed credentials (429 after 20; tests/api/test_failed_credentials.py) is raised here.
    settings = make_settings(rules, webhook_token=ADMIN_TOKEN, log_level="ERROR", auth_max_failures=1000)
    with serve_in_thread(settings, Calls()) as app:
        yield app


# The document this configuration serves, loaded at collection time (schemathesis'
# fixture-based lazy loading does not work with this pytest); the test below checks the
# live app serves exactly this document.
SETTINGS = make_settings(Path("rules.yaml"), webhook_token=ADMIN_TOKEN)
schema = schemathesis.openapi.from_dict(
    openapi.document(SETTINGS),
    config=SchemathesisConfig.from_dict(
        {
            "headers": {"Authorization": f"Bearer {ADMIN_TOKEN}"},
            "generation": {"max-examples": MAX_EXAMPLES},
            "seed": 20240501,
        }
    ),
)


# Alertmanager's payload is parsed tolerantly on purpose (unknown fields ignored, label
# values and timestamps coerced), so "schema-violating input was accepted" is not a defect
# there; every admin body and query is strict and keeps that check.
TOLERANT = {"/webhooks/alertmanager", "/api/v1/replay"}
# A pause is checked beyond what JSON Schema can say: a matcher's syntax (a regex that
# compiles), REMEDIATOR_MAX_PAUSE (configuration), an ``until`` in the future, one of
# ``for``/``until``. A schema-valid body may still be a 400 there (never a 5xx).
CHECKED_FURTHER = {("POST", "/api/v1/pauses"), ("POST", "/api/v1/pause")}


@schema.parametrize()
def test_the_api_honours_its_document(case: Any, live: ServedApp) -> None:
    excluded = [negative_data_rejection] if case.operation.path in TOLERANT else []
    if (case.operation.method.upper(), case.operation.path) in CHECKED_FURTHER:
        excluded.append(positive_data_acceptance)
    case.call_and_validate(base_url=live.url, excluded_checks=excluded)


def test_the_live_app_serves_the_document(live: ServedApp) -> None:
    with urllib.request.urlopen(f"{live.url}/api/v1/openapi.json", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("application/json")
        served = json.loads(response.read())
    assert served == json.loads(json.dumps(openapi.document(SETTINGS)))


def test_the_document_lists_exactly_the_routes(tmp_path: Path) -> None:
    settings = make_settings(write_rules(tmp_path / "rules.yaml"))
    app = create_app(settings)
    routes = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    document = openapi.document(settings)
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    assert documented == routes
    assert document["openapi"].startswith("3.")
    assert document["paths"]["/webhooks/alertmanager"]["post"]["security"] == [{"webhookBearer": []}]
    assert document["paths"]["/api/v1/events"]["get"]["security"] == [{"adminToken": []}]


def test_the_document_follows_the_configuration(tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "rules.yaml")
    basic = make_settings(
        rules, webhook_token=None, webhook_username="am", webhook_password="pw", admin_token=None
    )
    document = openapi.document(basic)
    assert document["paths"]["/webhooks/alertmanager"]["post"]["security"] == [{"webhookBasic": []}]
    assert not any(
        path.startswith("/api/v1/") and path != "/api/v1/openapi.json" for path in document["paths"]
    )
