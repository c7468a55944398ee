"""The checked-in JSON Schema is the one ``protocol.py`` and ``rest.py`` define."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from chatrelay import wire_schema
from chatrelay.cli import app

CHECKED_IN = Path(__file__).resolve().parents[2] / "docs" / "protocol.schema.json"


def test_the_checked_in_schema_matches_the_python_types() -> None:
    assert CHECKED_IN.read_text(encoding="utf-8") == wire_schema.render(), (
        "docs/protocol.schema.json is stale: run `make schema`"
    )


def test_the_schema_names_every_frame_and_body() -> None:
    definitions = wire_schema.json_schema()["$defs"]
    server = [ref["$ref"].rsplit("/", 1)[1] for ref in definitions["ServerFrame"]["oneOf"]]
    assert server == [
        "WelcomeFrame",
        "MessageFrame",
        "ChunkFrame",
        "CompleteFrame",
        "ErrorFrame",
        "PongFrame",
        "ReconnectFrame",
        "ResetFrame",
        "SnapshotFrame",
        "DeletedFrame",
    ]
    client = [ref["$ref"].rsplit("/", 1)[1] for ref in definitions["ClientFrame"]["oneOf"]]
    assert client == ["ChatFrame", "CancelFrame", "ResumeFrame", "PingFrame", "RefreshFrame"]
    assert definitions["ChunkFrame"]["required"] == [
        "type",
        "message_id",
        "seq",
        "delta",
        "ts",
        "offset",
    ]
    assert {"ChatBody", "ChatAccepted", "HistoryBody", "SessionsBody"} <= set(definitions)


def test_the_schema_command_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    result = CliRunner().invoke(app, ["schema", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8") == wire_schema.render()
