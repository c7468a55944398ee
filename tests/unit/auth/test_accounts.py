"""accounts mode's login: the same work and the same answer for every wrong pair."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import jwt
import pytest
from argon2 import PasswordHasher

from chatrelay.auth import passwords
from chatrelay.auth.accounts import (
    LOGIN_FAILED,
    SESSION_AUDIENCE,
    SESSION_ISSUER,
    AccountsAuthenticator,
)
from chatrelay.auth.passwords import hash_password
from chatrelay.exceptions import NotAuthenticated
from chatrelay.store.users import UserStore

SECRET = "a-server-secret-of-at-least-32-characters"
PASSWORD = "correct horse battery"
TTL = 600.0


@pytest.fixture
async def accounts(tmp_path: Path) -> AsyncIterator[AccountsAuthenticator]:
    users = UserStore(f"sqlite+aiosqlite:///{tmp_path}/db.sqlite")
    await users.open()
    await users.add("alice", hash_password(PASSWORD), admin=True)
    authenticator = AccountsAuthenticator(SECRET, users, session_ttl=TTL, leeway=0)
    yield authenticator
    await authenticator.aclose()


class CountingHasher:
    """argon2's hasher, noting the hash of every verification."""

    def __init__(self, real: PasswordHasher) -> None:
        self.real = real
        self.verified: list[str] = []

    def hash(self, password: str) -> str:
        return self.real.hash(password)

    def verify(self, hash: str, password: str) -> bool:
        self.verified.append(hash)
        return self.real.verify(hash, password)


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The hashes each argon2 verification was run against."""
    counting = CountingHasher(passwords._hasher)
    monkeypatch.setattr(passwords, "_hasher", counting)
    return counting.verified


async def test_a_right_password_makes_an_expiring_signed_session(
    accounts: AccountsAuthenticator,
) -> None:
    principal = await accounts.login("alice", PASSWORD)
    assert (principal.user_id, principal.admin) == ("alice", True)
    claims = jwt.decode(
        accounts.session_token(principal),
        SECRET,
        algorithms=["HS256"],
        audience=SESSION_AUDIENCE,
        issuer=SESSION_ISSUER,
    )
    assert claims["sub"] == "alice" and claims["role"] == "admin"
    assert claims["exp"] == int(principal.expires_at or 0)
    assert claims["exp"] - claims["iat"] == pytest.approx(TTL, abs=1)


@pytest.mark.parametrize(
    ("name", "password"),
    [("alice", "wrong password"), ("mallory", "wrong password"), ("not a name", PASSWORD)],
    ids=["wrong-password", "unknown-user", "malformed-name"],
)
async def test_every_wrong_pair_costs_one_verification_and_says_the_same(
    accounts: AccountsAuthenticator, verifications: list[str], name: str, password: str
) -> None:
    with pytest.raises(NotAuthenticated) as refused:
        await accounts.login(name, password)
    assert refused.value.detail == LOGIN_FAILED
    assert len(verifications) == 1
    assert verifications[0].startswith("$argon2id$")
