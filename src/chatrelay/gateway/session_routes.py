"""The session list's routes: a page of sessions, search, rename, delete.

Every route acts on the caller's own sessions only (``Conversations`` checks
ownership); another user's session is 403, a session not stored 404.
"""

from __future__ import annotations

from fastapi import APIRouter, Path, Query, Request, Response

from chatrelay.auth.base import Principal
from chatrelay.gateway.services import GatewayServices
from chatrelay.protocol.client_frames import MAX_ID_CHARS, SESSION_ID_PATTERN
from chatrelay.rest import (
    ChatAccepted,
    EditBody,
    RegenerateBody,
    RenameBody,
    SearchBody,
    SessionsBody,
    SessionSummary,
    error_responses,
)
from chatrelay.store.session_queries import CURSOR_PATTERN

# A search's longest text: a phrase, not a document.
MAX_SEARCH_CHARS = 200
# Sessions per page: enough for a screen, small enough to answer fast.
DEFAULT_PAGE = 50
MAX_PAGE = 200

router = APIRouter()
SessionId = Path(pattern=SESSION_ID_PATTERN.pattern, max_length=MAX_ID_CHARS)


def _services(request: Request) -> GatewayServices:
    services: GatewayServices = request.app.state.services
    return services


def _principal(request: Request) -> Principal:
    return _services(request).auth.authenticate(request)


@router.get("/api/sessions", response_model=None, responses=error_responses(401, 422, 503))
async def get_sessions(
    request: Request,
    limit: int = Query(DEFAULT_PAGE, ge=1, le=MAX_PAGE),
    cursor: str | None = Query(None, pattern=CURSOR_PATTERN),
) -> SessionsBody:
    """A page of the caller's sessions, newest first; ``next`` is the next page's ``cursor``."""
    conversations = _services(request).conversations
    return await conversations.sessions(_principal(request), limit, cursor)


@router.get("/api/search", response_model=None, responses=error_responses(401, 422, 503))
async def get_search(
    request: Request,
    q: str = Query(min_length=1, max_length=MAX_SEARCH_CHARS, pattern=r"\S"),
    limit: int = Query(DEFAULT_PAGE, ge=1, le=MAX_PAGE),
) -> SearchBody:
    """The caller's sessions whose title or message text contains ``q`` (any case)."""
    conversations = _services(request).conversations
    return await conversations.search(_principal(request), q.strip(), limit)


@router.patch(
    "/api/sessions/{session_id}",
    response_model=None,
    responses=error_responses(400, 401, 403, 404, 413, 422, 503),
)
async def patch_session(
    body: RenameBody, request: Request, session_id: str = SessionId
) -> SessionSummary:
    """Rename the caller's own session."""
    conversations = _services(request).conversations
    return await conversations.rename(_principal(request), session_id, body.title)


@router.delete(
    "/api/sessions/{session_id}",
    status_code=204,
    response_class=Response,
    responses=error_responses(401, 403, 404, 422, 503),
)
async def delete_session(request: Request, session_id: str = SessionId) -> Response:
    """Delete the caller's own session: its messages, its log; its open tabs are told."""
    await _services(request).conversations.delete(_principal(request), session_id)
    return Response(status_code=204)


@router.post(
    "/api/regenerate",
    status_code=202,
    responses=error_responses(400, 401, 403, 404, 409, 413, 422, 429, 503),
)
async def post_regenerate(body: RegenerateBody, request: Request) -> ChatAccepted:
    """Answer the session's last message again; the earlier answer stays as an alternative.

    The new answer streams to every socket of the session like any other
    (its ``message`` carries the same ``reply_to``).
    """
    conversations = _services(request).conversations
    return await conversations.regenerate(_principal(request), body.session_id, body.message_id)


@router.post(
    "/api/edit",
    status_code=202,
    responses=error_responses(400, 401, 403, 404, 409, 413, 422, 429, 503),
)
async def post_edit(body: EditBody, request: Request) -> ChatAccepted:
    """Ask an edited version of a user message: the conversation forks there.

    The new question takes the edited one's place (same parent; the old one and
    everything after it stay, as the other version) and is answered like a chat;
    both stream to every socket of the session as ``message`` frames carrying
    ``parent_id``. The model sees the new branch only.
    """
    conversations = _services(request).conversations
    return await conversations.edit(
        _principal(request), body.session_id, body.message_id, body.content
    )
