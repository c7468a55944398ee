"""Settings: derived wire limits and the internal token's start checks (issue 17, 2/13/11)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from chatrelay.cli import app
from chatrelay.config import Settings, internal_token_problem

# Each of these JSON-escapes to 12 bytes ("\ud83d\ude00") with json.dumps defaults.
EMOJI = "\U0001f600"


def _frame(content: str) -> bytes:
    return json.dumps({"type": "chat", "content": content, "client_id": "c" * 64}).encode()


@pytest.mark.parametrize("char", ["é", EMOJI, "a", "\n"])
def test_finding_13_any_message_within_the_limit_fits_a_frame_and_a_body(char: str) -> None:
    settings = Settings()
    largest = _frame(char * settings.max_message_chars)
    assert len(largest) <= settings.resolved_max_frame_bytes
    assert len(largest) <= settings.resolved_max_body_bytes


def test_finding_2_wire_limits_are_at_least_64_kib_and_can_be_set() -> None:
    small = Settings(max_message_chars=10)
    assert small.resolved_max_body_bytes == small.resolved_max_frame_bytes == 64 * 1024
    chosen = Settings(max_body_bytes=1_000_000, max_frame_bytes=500_000)
    assert (chosen.resolved_max_body_bytes, chosen.resolved_max_frame_bytes) == (
        1_000_000,
        500_000,
    )


@pytest.mark.parametrize("role", ["serve", "gateway", "worker"])
def test_finding_11_every_role_refuses_an_empty_internal_token(
    role: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHATRELAY_INTERNAL_TOKEN", "")
    result = CliRunner().invoke(app, [role, "--port", "1"])
    assert result.exit_code == 2
    assert "CHATRELAY_INTERNAL_TOKEN" in result.output


@pytest.mark.parametrize("role", ["gateway", "worker"])
def test_issue_11_default_internal_token_is_refused_beyond_loopback(
    role: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHATRELAY_INTERNAL_TOKEN", raising=False)
    result = CliRunner().invoke(app, [role, "--host", "0.0.0.0", "--port", "1"])
    assert result.exit_code == 2
    assert "CHATRELAY_INTERNAL_TOKEN" in result.output
    assert "change-me-internal" in result.output


def test_issue_11_defaults_pass_on_loopback_and_for_the_all_in_one() -> None:
    for role in ("serve", "gateway", "worker"):
        assert internal_token_problem(Settings(host="127.0.0.1"), role) is None
    assert internal_token_problem(Settings(host="0.0.0.0"), "serve") is None
    assert (
        internal_token_problem(Settings(host="0.0.0.0", internal_token="s3cret"), "worker") is None
    )
