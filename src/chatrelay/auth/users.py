"""``chatrelay users``: managing accounts-mode users from the command line.

Each function opens the store of ``CHATRELAY_DATABASE_URL`` (migrating it if
needed), does one thing, and answers the line to print.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from chatrelay.auth.passwords import check_new_password, hash_password
from chatrelay.config import Settings
from chatrelay.protocol.client_frames import valid_session_id
from chatrelay.store.users import UserExists, UserStore

T = TypeVar("T")


class UserCommandError(Exception):
    """A ``users`` command could not do what it was asked; the message says why."""


def _run(settings: Settings, action: Callable[[UserStore], Awaitable[T]]) -> T:
    async def main() -> T:
        async with UserStore(settings.database_url) as users:
            return await action(users)

    return asyncio.run(main())


def _hash(password: str) -> str:
    try:
        check_new_password(password)
    except ValueError as exc:
        raise UserCommandError(str(exc)) from exc
    return hash_password(password)


def add_user(settings: Settings, name: str, password: str, *, admin: bool) -> str:
    """Create an account."""
    if not valid_session_id(name):
        raise UserCommandError("a user name is 1 to 128 characters of [A-Za-z0-9_.:-]")
    password_hash = _hash(password)

    async def add(users: UserStore) -> str:
        try:
            await users.add(name, password_hash, admin=admin)
        except UserExists as exc:
            raise UserCommandError(f"user {name!r} exists already") from exc
        return f"added {'administrator' if admin else 'user'} {name}"

    return _run(settings, add)


def list_users(settings: Settings) -> str:
    """One line per account: name, role, creation time."""

    async def listing(users: UserStore) -> str:
        lines = [
            f"{user.name}\t{'admin' if user.admin else 'user'}\t{user.created_at:%Y-%m-%d %H:%M}"
            for user in await users.list()
        ]
        return "\n".join(lines) if lines else "no users"

    return _run(settings, listing)


def change_password(settings: Settings, name: str, password: str) -> str:
    """Set a new password (sessions already open last until their cookie expires)."""
    password_hash = _hash(password)

    async def change(users: UserStore) -> str:
        if not await users.set_password(name, password_hash):
            raise UserCommandError(f"no user {name!r}")
        return f"password of {name} changed"

    return _run(settings, change)


def remove_user(settings: Settings, name: str) -> str:
    """Delete an account; its conversations stay in the store."""

    async def remove(users: UserStore) -> str:
        if not await users.remove(name):
            raise UserCommandError(f"no user {name!r}")
        return f"removed {name}"

    return _run(settings, remove)
