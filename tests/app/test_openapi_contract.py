"""The OpenAPI document tells the truth: Schemathesis with every check, in-process.

The all-in-one app (``chatrelay serve``'s) is driven through Schemathesis's
ASGI transport, which runs the app's lifespan itself; every phase that
applies (examples, coverage, fuzzing, stateful) runs with a fixed seed and a
bounded number of examples, so a run is repeatable and takes seconds. It runs
in dev mode (the caller names its user) and in jwt mode (every request
carries a Bearer token, as an operator's login would mint it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events, from_schema

from chatrelay.app_factory import create_all_in_one_app
from tests.app.inprocess import app_settings
from tests.authz_matrix import AUDIENCE, ISSUER, SECRET, token

SEED = 17
MAX_EXAMPLES = 50


JWT_SETTINGS: dict[str, Any] = {
    "auth_mode": "jwt",
    "jwt_secret": SECRET,
    "jwt_audience": AUDIENCE,
    "jwt_issuer": ISSUER,
}


def _config(headers: dict[str, str]) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True},
            "checks": {"enabled": True},
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": True},
            },
            "headers": headers,
        }
    )


@pytest.mark.parametrize("mode", ["dev", "jwt"])
def test_the_api_answers_what_its_openapi_document_says(mode: str, tmp_path: Path) -> None:
    if mode == "dev":  # the caller names its user
        overrides: dict[str, Any] = {}
        headers = {"X-User-Id": "schemathesis"}
    else:
        overrides = JWT_SETTINGS
        headers = {"Authorization": f"Bearer {token('schemathesis')}"}
    # The simulated model answers at once: the run tests the contract, not streaming.
    settings = app_settings(tmp_path / "chatrelay.db", chunk_delay=0, **overrides)
    app = create_all_in_one_app(settings)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=_config(headers))
    failures: list[str] = []
    statuses: set[int] = set()
    finished = None
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            statuses.update(
                interaction.response.status_code
                for interaction in event.recorder.interactions.values()
                if interaction.response is not None
            )
            for check in event.recorder.checks.values():
                failures.extend(
                    f"{node.name}: {node.failure_info.failure.title}"
                    f" {node.failure_info.failure.message}"
                    f" ({node.failure_info.code_sample})"
                    for node in check
                    if node.failure_info is not None
                )
        elif isinstance(event, events.NonFatalError):
            failures.append(f"{event.label}: {event.value!r}")
        elif isinstance(event, events.FatalError):
            failures.append(f"engine: {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            finished = event
    assert finished is not None
    assert not failures, "\n".join(sorted(set(failures)))
    # The caller got in: the run reached the routes, not only the authentication wall.
    assert any(200 <= status < 300 for status in statuses), statuses
