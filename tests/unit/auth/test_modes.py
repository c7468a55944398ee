"""Choosing the auth mode from settings, and the settings each mode refuses to start without."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chatrelay.auth import create_authenticator, exposed_dev_auth
from chatrelay.auth.accounts import AccountsAuthenticator, server_secret
from chatrelay.auth.dev import DevAuthenticator
from chatrelay.auth.jwt import JwtAuthenticator
from chatrelay.config import Settings
from tests.unit.auth.keys import public_pem, rsa_key


def settings(**values: Any) -> Settings:
    return Settings(**values)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_dev_auth_may_listen_on_loopback(host: str) -> None:
    assert exposed_dev_auth(settings(host=host)) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "chat.example.com"])
def test_dev_auth_elsewhere_is_refused_with_the_setting_to_change(host: str) -> None:
    refusal = exposed_dev_auth(settings(host=host))
    assert refusal is not None
    assert host in refusal
    assert "CHATRELAY_AUTH_MODE" in refusal and "CHATRELAY_ALLOW_DEV_AUTH=1" in refusal
    assert exposed_dev_auth(settings(host=host, allow_dev_auth=True)) is None
    assert exposed_dev_auth(settings(host=host, auth_mode="jwt", jwt_secret="s" * 32)) is None


def test_each_mode_builds_its_authenticator(tmp_path: Path) -> None:
    assert isinstance(create_authenticator(settings()), DevAuthenticator)
    jwt_settings = settings(auth_mode="jwt", jwt_public_key=public_pem(rsa_key()))
    assert isinstance(create_authenticator(jwt_settings), JwtAuthenticator)
    accounts = settings(
        auth_mode="accounts", database_url=f"sqlite+aiosqlite:///{tmp_path}/db.sqlite"
    )
    assert isinstance(create_authenticator(accounts), AccountsAuthenticator)


def test_jwt_mode_needs_exactly_one_key_source() -> None:
    with pytest.raises(ValueError, match="CHATRELAY_JWT_SECRET"):
        create_authenticator(settings(auth_mode="jwt"))
    with pytest.raises(ValueError, match="exactly one"):
        create_authenticator(
            settings(auth_mode="jwt", jwt_secret="s" * 32, jwt_jwks_url="http://127.0.0.1:1/")
        )


def test_accounts_mode_on_a_shared_database_needs_the_secret() -> None:
    shared = settings(auth_mode="accounts", database_url="postgresql+asyncpg://db/chatrelay")
    with pytest.raises(ValueError, match="CHATRELAY_SECRET"):
        server_secret(shared)
    assert server_secret(shared.model_copy(update={"secret": "k" * 32})) == "k" * 32


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        server_secret(settings(auth_mode="accounts", secret="short"))
