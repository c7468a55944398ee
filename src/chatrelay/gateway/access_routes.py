"""Access routes: socket tickets and the caller's own account (``/api/ws-ticket``, ``/api/me``).

``install`` adds them to the gateway app, with the Origin guard in front of
every route (``auth/origins.py``).
"""

from __future__ import annotations

import math

from fastapi import APIRouter, FastAPI, Request
from starlette.middleware import Middleware

from chatrelay.auth.origins import OriginGuard
from chatrelay.auth.tickets import TICKET_TTL_SECONDS, issue_ticket
from chatrelay.exceptions import RateLimited
from chatrelay.gateway.services import GatewayServices
from chatrelay.rest import MeBody, TicketBody, error_responses

# Tickets a user may take at once, then per second: a client needs one per
# connect and refresh; the bound keeps a caller from filling the engine.
TICKET_BURST = 20.0
TICKETS_PER_SECOND = 2.0

router = APIRouter()


def _services(request: Request) -> GatewayServices:
    services: GatewayServices = request.app.state.services
    return services


@router.post("/api/ws-ticket", responses=error_responses(401, 403, 429, 503))
async def post_ws_ticket(request: Request) -> TicketBody:
    """A one-time ticket for the caller, redeemable once on any gateway."""
    services = _services(request)
    principal = services.auth.authenticate(request)
    coordination = services.engine.coordination
    wait = await coordination.take_token(
        f"ticket-rate:{principal.user_id}", TICKET_BURST, TICKETS_PER_SECOND
    )
    if wait > 0:
        seconds = math.ceil(wait)
        raise RateLimited(f"too many tickets; retry in {seconds} s", retry_after=seconds)
    ticket = await issue_ticket(coordination, principal)
    return {"ticket": ticket, "expires_in": TICKET_TTL_SECONDS, "expires_at": principal.expires_at}


@router.get("/api/me", responses=error_responses(401, 503))
async def get_me(request: Request) -> MeBody:
    """Who the caller is, and how much of their quotas they use."""
    services = _services(request)
    principal = services.auth.authenticate(request)
    quotas = services.conversations.quotas
    usage = await quotas.usage(principal.user_id)
    return {
        "user_id": principal.user_id,
        "role": "admin" if principal.admin else "user",
        "usage": {"running": usage.running, "tokens_today": usage.tokens_today},
        "limits": {
            "max_concurrent_generations": quotas.max_running,
            "daily_tokens": quotas.daily_tokens,
        },
    }


def install(app: FastAPI) -> None:
    """Add the Origin guard and the access routes to the gateway ``app``.

    The guard goes innermost (``add_middleware`` would put it outermost), so
    its 403 passes through the security headers and request ids like any answer.
    """
    app.user_middleware.append(Middleware(OriginGuard))
    app.include_router(router)
