"""What a user may do with a conversation, whether asked over WebSocket or REST.

Owns the checks that do not depend on the transport: who owns a session,
message length, the per-user chat rate and quotas (``quotas.py``), ids
chosen before any worker is called (so a retried call cannot start two
generations).

Ownership: a session belongs to the user whose first chat stored it. Only
its owner may chat in it; its owner and administrators may read it (history,
a socket) and cancel its answers; anyone else gets ``Forbidden`` (403 /
close 4403). The caller is always the authenticated ``Principal``.

A session is stored on its first accepted chat, not when a socket opens or
a request is refused: ``send`` claims it after every check passed, and the
store's claim is race-free (of two users racing the first chat of one new
id, one owns it and the other is refused with ``forbidden``).

An owner never changes once stored, so each gateway process remembers the
owners it has read or claimed, in the one cache the accept path uses too
(``owners.py``): a chat in a known session costs no store round trip here.
"""

from __future__ import annotations

import math

from chatrelay.auth.base import Principal
from chatrelay.config import Settings
from chatrelay.engine.base import Engine
from chatrelay.exceptions import (
    Busy,
    ChatRelayError,
    Forbidden,
    InvalidMessage,
    NotFound,
    NotLatest,
    RateLimited,
)
from chatrelay.gateway.owners import SessionOwners
from chatrelay.gateway.quotas import Quotas
from chatrelay.gateway.upstream import Dispatcher
from chatrelay.protocol.client_frames import new_id, unstorable
from chatrelay.protocol.server_frames import (
    WireMessage,
    deleted_frame,
    partial_texts,
    wire_message,
)
from chatrelay.rest import (
    CancelRequest,
    ChatAccepted,
    GenerationRequest,
    SearchBody,
    SessionsBody,
    SessionSummary,
    search_result,
    session_summary,
)
from chatrelay.store.conversations import ConversationStore

OTHER_USERS_SESSION = "this session belongs to another user"
NO_SUCH_SESSION = "no such session"
# Messages looked at for an answer still streaming in a session being deleted.
RECENT_MESSAGES = 20


class Conversations:
    """Sessions, chats, cancels and history, each asked by an authenticated principal."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        store: ConversationStore,
        dispatcher: Dispatcher,
        owners: SessionOwners | None = None,
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._store = store
        self._dispatcher = dispatcher
        self.quotas = Quotas(
            engine.coordination,
            store,
            max_running=settings.max_concurrent_generations,
            daily_tokens=settings.user_daily_tokens,
        )
        # The gateway's one owner cache, shared with the accept path.
        self._owners = owners or SessionOwners(store)

    async def owner(self, session_id: str) -> str | None:
        """Who owns the session, or None while it is not stored (no chat accepted yet)."""
        return await self._owners.owner(session_id)

    async def check_owner(
        self, principal: Principal, session_id: str, *, read: bool = False
    ) -> bool:
        """Whether the session is stored; raises ``Forbidden`` if it is someone else's.

        ``read``: to read or cancel, which administrators may do in any session.
        Stores nothing: a session is claimed by its first accepted chat.
        """
        owner = await self.owner(session_id)
        if owner is not None and owner != principal.user_id and not (read and principal.admin):
            raise Forbidden(OTHER_USERS_SESSION)
        return owner is not None

    async def send(
        self, principal: Principal, session_id: str, content: str, client_id: str | None = None
    ) -> ChatAccepted:
        """Start a chat turn in the principal's own session; the answer streams through its log.

        The first accepted chat of a session stores it, owned by the principal.
        Raises ``QuotaExceeded`` past the user's running answers or daily tokens.
        """
        user_id = principal.user_id
        self._check_content(content, client_id)
        stored = await self.check_owner(principal, session_id)
        await self._take_chat_token(user_id)
        if not stored:
            if await self._store.claim_session(session_id, user_id) != user_id:
                raise Forbidden(OTHER_USERS_SESSION)
            self._owners.remember(session_id, user_id)
        request = GenerationRequest(
            session_id=session_id,
            user_id=user_id,
            message=content,
            message_id=new_id(),
            user_message_id=new_id(),
            client_id=client_id,
        )
        return await self._start(user_id, request)

    def _check_content(self, content: str, client_id: str | None = None) -> None:
        """``InvalidMessage`` unless ``content`` (and ``client_id``) can be asked and stored."""
        if not content.strip():
            raise InvalidMessage("the message is empty")
        if len(content) > self._settings.max_message_chars:
            raise InvalidMessage(
                f"the message is longer than {self._settings.max_message_chars} characters"
            )
        for name, text in (("message", content), ("client_id", client_id or "")):
            if problem := unstorable(text):
                raise InvalidMessage(f"the {name} {problem}")

    async def _take_chat_token(self, user_id: str) -> None:
        """The per-user chat rate (a regeneration counts as a chat); ``RateLimited`` past it."""
        wait = await self._engine.coordination.take_token(
            f"chat-rate:{user_id}",
            self._settings.chat_rate_burst,
            self._settings.chat_rate_per_second,
        )
        if wait > 0:
            seconds = math.ceil(wait)
            raise RateLimited(f"too many messages; retry in {seconds} s", retry_after=seconds)

    async def _start(self, user_id: str, request: GenerationRequest) -> ChatAccepted:
        """Claim a quota slot and hand the request to a worker."""
        await self.quotas.claim(user_id, request.session_id, request.message_id)
        try:
            return await self._dispatcher.start(request)
        except ChatRelayError:  # refused before it started: the slot was never used
            await self.quotas.release(user_id, request.session_id, request.message_id)
            raise

    async def regenerate(
        self, principal: Principal, session_id: str, message_id: str
    ) -> ChatAccepted:
        """Answer again the last user message of the principal's own session.

        ``message_id`` is the answer to replace (it stays, as an alternative).
        ``NotFound``: no such answer in this session (a user message is not one);
        ``NotLatest``: it is not an answer to the session's last question; ``Busy``:
        it is still streaming. All three are states of a valid request (409/404).
        """
        await self._check_stored_own(principal, session_id)
        answer = await self._store.get_message(message_id)
        if answer is None or answer.session_id != session_id:
            raise NotFound("no such message in this session")
        if answer.role != "assistant" or answer.reply_to is None:
            raise NotFound("no such answer in this session (only an answer can be regenerated)")
        if answer.status == "streaming":
            raise Busy("this answer is still streaming; stop it first")
        recent = await self._store.history(session_id, limit=RECENT_MESSAGES)
        last_question = next((m for m in reversed(recent) if m.role == "user"), None)
        if last_question is None or last_question.id != answer.reply_to:
            raise NotLatest("only the answer to the last message can be regenerated")
        request = GenerationRequest(
            session_id=session_id,
            user_id=principal.user_id,
            message=last_question.content,
            message_id=new_id(),
            user_message_id=last_question.id,
            client_id=None,
            regenerate=True,
        )
        await self._take_chat_token(principal.user_id)
        return await self._start(principal.user_id, request)

    async def edit(
        self, principal: Principal, session_id: str, message_id: str, content: str
    ) -> ChatAccepted:
        """Ask ``content`` in place of the user message ``message_id`` of the principal's own
        session: a new version of it, answered; the conversation forks there and the old
        branch stays. ``NotFound``: no such question in the session (an answer is not one);
        ``InvalidMessage``: the text is not a valid chat message; ``Busy`` (from the
        worker): an answer is streaming in the session.
        """
        self._check_content(content)
        await self._check_stored_own(principal, session_id)
        edited = await self._store.get_message(message_id)
        if edited is None or edited.session_id != session_id:
            raise NotFound("no such message in this session")
        if edited.role != "user":
            # A valid request in a state it cannot serve (as regenerate's): not 422.
            raise NotFound("no such question in this session (an answer is regenerated)")
        request = GenerationRequest(
            session_id=session_id,
            user_id=principal.user_id,
            message=content,
            message_id=new_id(),
            user_message_id=new_id(),
            client_id=None,
            edit_of=message_id,
        )
        await self._take_chat_token(principal.user_id)
        return await self._start(principal.user_id, request)

    async def cancel(self, principal: Principal, session_id: str, message_id: str) -> None:
        """Stop a running generation of the session (from any node)."""
        await self.check_owner(principal, session_id, read=True)
        await self._dispatcher.cancel(CancelRequest(session_id=session_id, message_id=message_id))

    async def history(
        self, principal: Principal, session_id: str, limit: int = 200, before: str | None = None
    ) -> list[WireMessage]:
        """Stored messages, oldest first; a message still streaming shows its text so far."""
        if not await self.check_owner(principal, session_id, read=True):
            return []
        records = await self._store.history(session_id, limit=limit, before=before)
        messages = [wire_message(record) for record in records]
        streaming = {m["id"]: m for m in messages if m["status"] == "streaming"}
        if streaming:
            log = await self._engine.broker.history(session_id, 0)
            for message_id, text in partial_texts(log.events, streaming).items():
                # Both are beginnings of one text: the longer is the newer.
                message = streaming[message_id]
                message["content"] = max(message["content"], text, key=len)
        return messages

    async def sessions(
        self, principal: Principal, limit: int = 50, cursor: str | None = None
    ) -> SessionsBody:
        """A page of the principal's own sessions, newest first."""
        page = await self._store.session_page(principal.user_id, limit, cursor)
        return {"sessions": [session_summary(r) for r in page.sessions], "next": page.next}

    async def search(self, principal: Principal, text: str, limit: int = 50) -> SearchBody:
        """The principal's own sessions whose title or messages contain ``text``."""
        hits = await self._store.search(principal.user_id, text, limit)
        return {"query": text, "results": [search_result(hit) for hit in hits]}

    async def _check_stored_own(self, principal: Principal, session_id: str) -> None:
        """Raises ``NotFound`` unless stored, ``Forbidden`` unless the principal's own."""
        if not await self.check_owner(principal, session_id):
            raise NotFound(NO_SUCH_SESSION)

    async def rename(self, principal: Principal, session_id: str, title: str) -> SessionSummary:
        """Give the principal's own session a title (kept from then on)."""
        await self._check_stored_own(principal, session_id)
        record = await self._store.rename_session(session_id, " ".join(title.split()))
        if record is None:  # deleted meanwhile
            raise NotFound(NO_SUCH_SESSION)
        return session_summary(record)

    async def delete(self, principal: Principal, session_id: str) -> None:
        """Delete the principal's own session: its answers stop, its sockets are told
        (a ``deleted`` frame), its messages and its engine log are removed.

        A worker still streaming into it stops at its next chunk (a cancel); what
        it writes after that finds no session and is dropped.
        """
        await self._check_stored_own(principal, session_id)
        # One answer streams at a time, and it is among the newest messages.
        for message in await self._store.history(session_id, limit=RECENT_MESSAGES):
            if message.status == "streaming":
                await self._engine.coordination.request_cancel(session_id, message.id)
        # Other gateways may still remember the owner: they find nothing stored
        # (404 for rename and delete) and a chat there stores the session anew.
        self._owners.forget(session_id)
        if not await self._store.delete_session(session_id):
            raise NotFound(NO_SUCH_SESSION)
        await self._engine.broker.publish(session_id, deleted_frame(session_id))
        await self._engine.broker.delete(session_id)
