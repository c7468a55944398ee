"""Session owners on the accept path: one store query per batch of sockets, known owners cached."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection
from pathlib import Path

import pytest

from chatrelay.gateway.owners import SessionOwners
from chatrelay.store.conversations import ConversationStore


class CountingStore(ConversationStore):
    """A real SQLite store that counts the batched owner queries it answers."""

    queries: list[list[str]]

    async def session_owners(self, session_ids: Collection[str]) -> dict[str, str]:
        self.queries.append(sorted(session_ids))
        return await super().session_owners(session_ids)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[CountingStore]:
    async with CountingStore(f"sqlite+aiosqlite:///{tmp_path / 'owners.db'}") as opened:
        opened.queries = []
        await opened.claim_session("s-ana", "ana")
        await opened.claim_session("s-bob", "bob")
        yield opened


async def test_sockets_arriving_together_share_one_query(store: CountingStore) -> None:
    owners = SessionOwners(store)
    asked = ["s-ana", "s-bob", "s-new"] * 10
    found = await asyncio.gather(*(owners.owner(s) for s in asked))
    assert found == ["ana", "bob", None] * 10
    assert store.queries == [["s-ana", "s-bob", "s-new"]]


async def test_a_known_owner_is_not_asked_again_but_an_unclaimed_session_is(
    store: CountingStore,
) -> None:
    owners = SessionOwners(store)
    assert await owners.owner("s-ana") == "ana"
    assert await owners.owner("s-new") is None
    await store.claim_session("s-new", "carol")  # its first chat, on any node
    assert await owners.owner("s-ana") == "ana"
    assert await owners.owner("s-new") == "carol"
    assert store.queries == [["s-ana"], ["s-new"], ["s-new"]]
    assert owners.cached("s-new") == "carol"


class SlowStore(CountingStore):
    """Its owner query waits until released: a lookup still running at shutdown."""

    release: asyncio.Event
    asked: asyncio.Event

    async def session_owners(self, session_ids: Collection[str]) -> dict[str, str]:
        self.queries.append(sorted(session_ids))
        self.asked.set()
        await self.release.wait()
        return await super().session_owners(session_ids)


async def test_closing_stops_a_running_lookup_and_its_waiters(tmp_path: Path) -> None:
    async with SlowStore(f"sqlite+aiosqlite:///{tmp_path / 'slow.db'}") as store:
        store.queries, store.release, store.asked = [], asyncio.Event(), asyncio.Event()
        owners = SessionOwners(store)
        waiter = asyncio.create_task(owners.owner("s-any"))
        await store.asked.wait()
        await owners.aclose()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        store.release.set()
        # Nothing runs on after the close: the store closes with no lookup left.
        await asyncio.sleep(0)
        assert store.queries == [["s-any"]]
