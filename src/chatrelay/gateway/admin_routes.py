"""The cluster view's REST routes: ``GET /api/admin/cluster`` and ``POST /api/admin/cancel``.

Any gateway answers from the engine alone: the node registry (what every
gateway and worker last reported, ``node_status.py``) and the socket
registry (which gateways hold sockets of each streaming session); no node
asks another. Administrators only: the ``admin`` principals of ``jwt`` and
``accounts`` modes; in ``dev`` mode, where anyone may name any user, callers
on the loopback interface only (and no proxy in front saying otherwise).
"""

from __future__ import annotations

import ipaddress
import time
from typing import Any

from fastapi import APIRouter, Request

from chatrelay.auth.base import Principal
from chatrelay.exceptions import Forbidden
from chatrelay.gateway.services import GatewayServices
from chatrelay.rest import CancelAccepted, CancelBody, error_responses

router = APIRouter()
FORWARDED_HEADERS = ("x-forwarded-for", "x-real-ip")


def _services(request: Request) -> GatewayServices:
    services: GatewayServices = request.app.state.services
    return services


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.strip()).is_loopback
    except ValueError:
        return False


def from_loopback(request: Request) -> bool:
    """The request came from this machine, and so did every address a proxy forwarded for."""
    if request.client is None or not _is_loopback(request.client.host):
        return False
    forwarded = [
        part for name in FORWARDED_HEADERS for part in request.headers.get(name, "").split(",")
    ]
    return all(_is_loopback(address) for address in forwarded if address.strip())


def administrator(request: Request) -> Principal:
    """The caller if it may use the cluster view; raises ``NotAuthenticated`` / ``Forbidden``."""
    services = _services(request)
    principal = services.auth.authenticate(request)
    if services.settings.auth_mode == "dev":
        if not from_loopback(request):
            raise Forbidden("in dev auth mode the cluster view answers loopback callers only")
        return Principal(principal.user_id, admin=True, expires_at=principal.expires_at)
    if not principal.admin:
        raise Forbidden("the cluster view is for administrators")
    return principal


async def cluster_view(services: GatewayServices) -> dict[str, Any]:
    """Every live node's status, and the answers streaming now with their worker and gateways."""
    engine = services.engine
    nodes = await engine.nodes.statuses()
    sessions: list[dict[str, Any]] = []
    for node in nodes:
        for running in node.get("streaming", []):
            sockets = await engine.registry.session_connections(running["session_id"])
            sessions.append(
                {
                    **running,
                    "worker": node["node_id"],
                    "gateways": sorted({socket.node_id for socket in sockets}),
                }
            )
    sessions.sort(key=lambda s: (s["started_at"], s["message_id"]))
    return {"node": services.node_id, "at": time.time(), "nodes": nodes, "sessions": sessions}


@router.get("/api/admin/cluster", response_model=None, responses=error_responses(401, 403, 503))
async def get_cluster(request: Request) -> dict[str, Any]:
    """Every gateway and worker with its live counters, and the answers streaming now."""
    administrator(request)
    return await cluster_view(_services(request))


@router.post("/api/admin/cancel", responses=error_responses(400, 401, 403, 404, 413, 422, 503))
async def post_admin_cancel(body: CancelBody, request: Request) -> CancelAccepted:
    """Stop any user's running answer (the same path as ``POST /api/cancel``)."""
    principal = administrator(request)
    await _services(request).conversations.cancel(principal, body.session_id, body.message_id)
    return {"status": "cancelled"}
