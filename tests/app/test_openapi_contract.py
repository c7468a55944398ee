"""The OpenAPI document tells the truth: Schemathesis with every check, in-process.

The all-in-one app (``chatrelay serve``'s) is driven through Schemathesis's
ASGI transport, which runs the app's lifespan itself; every phase that
applies (examples, coverage, fuzzing, stateful) runs with a fixed seed and a
bounded number of examples, so a run is repeatable and takes seconds.
"""

from __future__ import annotations

from pathlib import Path

import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events, from_schema

from chatrelay.app_factory import create_all_in_one_app
from tests.app.inprocess import app_settings

SEED = 17
MAX_EXAMPLES = 50


def _config() -> SchemathesisConfig:
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
            # dev auth: the caller names its user (the other modes are the identity suite's).
            "headers": {"X-User-Id": "schemathesis"},
        }
    )


def test_the_api_answers_what_its_openapi_document_says(tmp_path: Path) -> None:
    # The simulated model answers at once: the run tests the contract, not streaming.
    app = create_all_in_one_app(app_settings(tmp_path / "chatrelay.db", chunk_delay=0))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=_config())
    failures: list[str] = []
    finished = None
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
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
