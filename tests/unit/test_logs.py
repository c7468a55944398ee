"""Log set-up: no traceback locals and no query strings in any format (issue 17, 1 and 16)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from chatrelay import logs

SECRET = "expected-token-9b3c"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in ("", *logs.UVICORN_LOGGERS)]
    saved = [(logger.handlers[:], logger.level, logger.propagate) for logger in loggers]
    yield
    for logger, (handlers, level, propagate) in zip(loggers, saved, strict=True):
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def _fail_with_a_secret_local() -> None:
    token = SECRET  # what a traceback with locals would print
    raise ValueError(f"compare failed ({len(token)} characters)")


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_finding_1_tracebacks_never_print_local_variables(
    fmt: str, restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure("info", "node-t", fmt)
    try:
        _fail_with_a_secret_local()
    except ValueError:
        logging.getLogger("chatrelay.test").exception("unhandled error")
    err = capsys.readouterr().err
    assert "ValueError" in err  # the traceback is there...
    assert SECRET not in err  # ...without the locals


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_finding_16_query_strings_never_reach_the_log(
    fmt: str, restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure("info", "node-t", fmt)
    logging.getLogger("uvicorn.error").info(
        '%s - "WebSocket %s" 403', "127.0.0.1:5000", f"/ws/chat?user_id=u1&token={SECRET}"
    )
    err = capsys.readouterr().err
    assert "/ws/chat" in err
    assert SECRET not in err


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_a_client_sending_bad_utf8_leaves_one_line_and_no_traceback(
    fmt: str, restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure("info", "node-t", fmt)
    try:
        b"\xff".decode()
    except UnicodeDecodeError:
        # What uvicorn does with a text frame that is not UTF-8 (found by the frame fuzz test).
        logging.getLogger("uvicorn.error").exception("Invalid UTF-8 sequence received from client.")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert "Invalid UTF-8" in lines[0] and "Traceback" not in lines[0]
    assert "error" not in lines[0].lower().replace("uvicorn.error", "")
