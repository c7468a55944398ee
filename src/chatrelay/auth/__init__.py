"""Authentication modes (DESIGN.md section 8) behind one interface, ``auth.base.Authenticator``."""

from __future__ import annotations

from chatrelay.auth.base import Authenticator, Principal


def create_authenticator(mode: str) -> Authenticator:
    """The authenticator of ``CHATRELAY_AUTH_MODE``."""
    if mode == "dev":
        from chatrelay.auth.dev import DevAuthenticator

        return DevAuthenticator()
    raise ValueError(f"auth mode {mode!r} is not available yet (only 'dev')")


__all__ = ["Authenticator", "Principal", "create_authenticator"]
