"""``dev`` mode (the all-in-one default): trusts the user named in the request.

The seed's way: ``user_id=`` and an optional ``token=dev-token`` in the query,
or the ``X-User-Id`` header; it logs a warning at start.
"""

from __future__ import annotations

import logging

from starlette.requests import HTTPConnection

from chatrelay.auth.base import Principal
from chatrelay.exceptions import NotAuthenticated
from chatrelay.protocol.client_frames import valid_session_id

logger = logging.getLogger(__name__)

DEFAULT_DEV_USER = "demo_user"
DEV_TOKEN = "dev-token"


class DevAuthenticator:
    """Trusts ``user_id`` from the query or the ``X-User-Id`` header (development only)."""

    def __init__(self) -> None:
        logger.warning("auth mode is 'dev': any caller may name any user; never expose this")

    def authenticate(self, connection: HTTPConnection) -> Principal:
        query, headers = connection.query_params, connection.headers
        token = query.get("token")
        if token is not None and token != DEV_TOKEN:
            raise NotAuthenticated("unknown token")
        user = query.get("user_id") or headers.get("x-user-id") or DEFAULT_DEV_USER
        # User ids share the session id alphabet: they end up in keys and logs.
        if not valid_session_id(user):
            raise NotAuthenticated("user_id must be 1 to 128 characters of [A-Za-z0-9_.:-]")
        return Principal(user)
