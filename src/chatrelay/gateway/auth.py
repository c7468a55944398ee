"""Who is calling: the authentication modes behind one interface.

``dev`` mode (the all-in-one default) trusts the user named in the request,
the seed's way (``user_id=`` and an optional ``token=dev-token``); it logs a
warning at start. ``jwt`` mode plugs in here later (DESIGN.md section 8).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Protocol

from chatrelay.exceptions import NotAuthenticated
from chatrelay.protocol import valid_session_id

logger = logging.getLogger(__name__)

DEFAULT_DEV_USER = "demo_user"
DEV_TOKEN = "dev-token"


class Authenticator(Protocol):
    def user_for(self, query: Mapping[str, str], headers: Mapping[str, str]) -> str:
        """The user making a request, from its query and headers; or raise NotAuthenticated."""
        ...


class DevAuthenticator:
    """Trusts ``user_id`` from the query or the ``X-User-Id`` header (development only)."""

    def __init__(self) -> None:
        logger.warning("auth mode is 'dev': any caller may name any user; never expose this")

    def user_for(self, query: Mapping[str, str], headers: Mapping[str, str]) -> str:
        token = query.get("token")
        if token is not None and token != DEV_TOKEN:
            raise NotAuthenticated("unknown token")
        user = query.get("user_id") or headers.get("x-user-id") or DEFAULT_DEV_USER
        # User ids share the session id alphabet: they end up in keys and logs.
        if not valid_session_id(user):
            raise NotAuthenticated("user_id must be 1 to 128 characters of [A-Za-z0-9_.:-]")
        return user


def create_authenticator(mode: str) -> Authenticator:
    if mode == "dev":
        return DevAuthenticator()
    raise ValueError(f"auth mode {mode!r} is not available yet (only 'dev')")
