"""``chatrelay users``: add, list, passwd, remove against a SQLite file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chatrelay.auth.passwords import verify_password
from chatrelay.cli import app
from chatrelay.store.users import UserStore


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path}/chatrelay.db"
    monkeypatch.setenv("CHATRELAY_DATABASE_URL", url)
    return url


def users(*args: str, password: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["users", *args], input=password)
    return result.exit_code, result.output.strip()


def stored_hash(url: str, name: str) -> str | None:
    async def read() -> str | None:
        async with UserStore(url) as store:
            user = await store.get(name)
            return None if user is None else user.password_hash

    return asyncio.run(read())


def test_add_list_passwd_remove(database: str) -> None:
    assert users("add", "alice", password="first password\n") == (0, "added user alice")
    assert users("add", "root", "--admin", password="root password\n")[0] == 0
    code, listing = users("list")
    assert code == 0
    assert [line.split("\t")[:2] for line in listing.splitlines()] == [
        ["alice", "user"],
        ["root", "admin"],
    ]
    first = stored_hash(database, "alice")
    assert first is not None and first.startswith("$argon2id$")
    assert verify_password(first, "first password")

    assert users("passwd", "alice", password="second password\n")[0] == 0
    second = stored_hash(database, "alice")
    assert verify_password(second, "second password")
    assert not verify_password(second, "first password")

    assert users("remove", "alice") == (0, "removed alice")
    assert stored_hash(database, "alice") is None
    assert users("list")[1].splitlines()[0].startswith("root")


def test_refusals_say_why(database: str) -> None:
    assert users("add", "bob", password="long enough\n")[0] == 0
    code, output = users("add", "bob", password="long enough\n")
    assert code == 1 and "exists already" in output
    code, output = users("add", "carol", password="short\n")
    assert code == 1 and "at least 8" in output
    code, output = users("add", "not a name", password="long enough\n")
    assert code == 1 and "user name" in output
    assert users("remove", "nobody")[0] == 1
    assert users("passwd", "nobody", password="long enough\n")[0] == 1


def test_verify_password_is_false_for_an_unknown_user() -> None:
    assert verify_password(None, "anything at all") is False
