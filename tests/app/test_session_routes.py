"""The session list's routes in process: pages, search, rename, delete (with tabs open)."""

from __future__ import annotations

from chatrelay.llm.simulated import choose_answer
from tests.app.inprocess import InProcessApp, new_session, new_user


async def chat_once(chat_app: InProcessApp, user: str, session: str, text: str) -> None:
    client = await chat_app.connect(session_id=session, user_id=user)
    await client.follow(await client.chat(text))
    await client.close()


async def test_sessions_come_in_pages(chat_app: InProcessApp) -> None:
    user = new_user()
    sessions = [new_session() for _ in range(5)]
    for n, session in enumerate(sessions):
        await chat_once(chat_app, user, session, f"question {n}")
    first = (await chat_app.http.get("/api/sessions", params={"user_id": user, "limit": 3})).json()
    second = (
        await chat_app.http.get(
            "/api/sessions", params={"user_id": user, "limit": 3, "cursor": first["next"]}
        )
    ).json()
    listed = [s["id"] for s in first["sessions"] + second["sessions"]]
    assert listed == list(reversed(sessions))
    assert second["next"] is None
    bad = await chat_app.http.get("/api/sessions", params={"user_id": user, "cursor": "x"})
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_message")


async def test_search_finds_a_word_of_an_answer_in_the_callers_sessions_only(
    chat_app: InProcessApp,
) -> None:
    alice, bob = new_user(), new_user()
    session = new_session()
    await chat_once(chat_app, alice, session, "hello there")
    await chat_once(chat_app, bob, new_session(), "hello there")
    word = choose_answer("hello there").split()[3].strip(".,!?")
    found = await chat_app.http.get("/api/search", params={"user_id": alice, "q": word.upper()})
    assert found.status_code == 200
    assert [r["id"] for r in found.json()["results"]] == [session]
    assert word in found.json()["results"][0]["snippet"]
    blank = await chat_app.http.get("/api/search", params={"user_id": alice, "q": "  "})
    assert (blank.status_code, blank.json()["code"]) == (422, "invalid_message")


async def test_rename_is_for_the_owner_of_a_stored_session(chat_app: InProcessApp) -> None:
    owner, intruder, session = new_user(), new_user(), new_session()
    await chat_once(chat_app, owner, session, "hello")
    path = f"/api/sessions/{session}"
    renamed = await chat_app.http.patch(
        path, params={"user_id": owner}, json={"title": "  Plans   for May "}
    )
    forbidden = await chat_app.http.patch(path, params={"user_id": intruder}, json={"title": "x"})
    blank = await chat_app.http.patch(path, params={"user_id": owner}, json={"title": " "})
    missing = await chat_app.http.patch(
        f"/api/sessions/{new_session()}", params={"user_id": owner}, json={"title": "x"}
    )
    assert (renamed.status_code, renamed.json()["title"]) == (200, "Plans for May")
    assert (forbidden.status_code, forbidden.json()["code"]) == (403, "forbidden")
    assert (blank.status_code, blank.json()["code"]) == (422, "invalid_message")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    listed = await chat_app.http.get("/api/sessions", params={"user_id": owner})
    assert [s["title"] for s in listed.json()["sessions"]] == ["Plans for May"]


async def test_deleting_a_session_tells_its_tabs_and_forgets_it(chat_app: InProcessApp) -> None:
    owner, intruder, session = new_user(), new_user(), new_session()
    first = await chat_app.connect(session_id=session, user_id=owner)
    second = await chat_app.connect(session_id=session, user_id=owner)
    await first.follow(await first.chat("hello"))
    path = f"/api/sessions/{session}"
    forbidden = await chat_app.http.delete(path, params={"user_id": intruder})
    assert (forbidden.status_code, forbidden.json()["code"]) == (403, "forbidden")

    deleted = await chat_app.http.delete(path, params={"user_id": owner})
    assert deleted.status_code == 204
    for tab in (first, second):
        frame = await tab.recv_type("deleted")
        assert frame["session_id"] == session
    again = await chat_app.http.delete(path, params={"user_id": owner})
    assert (again.status_code, again.json()["code"]) == (404, "not_found")
    assert await chat_app.history(session, owner) == []
    listed = await chat_app.http.get("/api/sessions", params={"user_id": owner})
    assert listed.json()["sessions"] == []


async def test_deleting_a_session_mid_answer_stops_the_answer(chat_app: InProcessApp) -> None:
    owner, session = new_user(), new_session()
    client = await chat_app.connect(session_id=session, user_id=owner)
    await client.chat("please explain the stream")
    await client.recv_type("chunk")
    deleted = await chat_app.http.delete(f"/api/sessions/{session}", params={"user_id": owner})
    assert deleted.status_code == 204
    await client.recv_type("deleted")
    # The user can chat again at once: the deleted answer's slot is given back.
    fresh = await chat_app.connect(session_id=new_session(), user_id=owner)
    turn = await fresh.follow(await fresh.chat("hello"))
    assert turn.complete is not None and turn.complete["status"] == "completed"
    assert await chat_app.history(session, owner) == []


async def test_regenerate_keeps_the_earlier_answer_as_an_alternative(
    chat_app: InProcessApp,
) -> None:
    owner, session = new_user(), new_session()
    client = await chat_app.connect(session_id=session, user_id=owner)
    first = await client.chat("hello")
    await client.follow(first)
    regenerated = await chat_app.http.post(
        "/api/regenerate",
        params={"user_id": owner},
        json={"session_id": session, "message_id": first},
    )
    assert regenerated.status_code == 202
    second = regenerated.json()["message_id"]
    turn = await client.follow(second)
    assert turn.complete is not None and turn.complete["status"] == "completed"
    stored = await chat_app.history(session, owner)
    question = stored[0]
    assert [(m["role"], m.get("reply_to")) for m in stored] == [
        ("user", None),
        ("assistant", question["id"]),
        ("assistant", question["id"]),
    ]
    assert [m["id"] for m in stored[1:]] == [first, second]


async def test_regenerate_refuses_what_it_cannot_do(chat_app: InProcessApp) -> None:
    owner, intruder, session = new_user(), new_user(), new_session()
    client = await chat_app.connect(session_id=session, user_id=owner)
    old_answer = await client.chat("hello")
    await client.follow(old_answer)
    await client.follow(await client.chat("hello again"))
    question = (await chat_app.history(session, owner))[0]["id"]

    async def regenerate(user: str, message_id: str) -> tuple[int, str]:
        response = await chat_app.http.post(
            "/api/regenerate",
            params={"user_id": user},
            json={"session_id": session, "message_id": message_id},
        )
        return response.status_code, response.json()["code"]

    assert await regenerate(owner, "no-such-message") == (404, "not_found")
    assert await regenerate(owner, question) == (404, "not_found")  # a question is no answer
    assert await regenerate(owner, old_answer) == (409, "not_latest")
    assert await regenerate(intruder, old_answer) == (403, "forbidden")

    streaming = await client.chat("please explain the stream")
    await client.recv_type("chunk")
    assert await regenerate(owner, streaming) == (409, "busy")


async def test_editing_a_question_forks_the_conversation(chat_app: InProcessApp) -> None:
    owner, session = new_user(), new_session()
    client = await chat_app.connect(session_id=session, user_id=owner)
    await client.follow(await client.chat("hello"))
    await client.follow(await client.chat("tell me more"))
    first_question = (await chat_app.history(session, owner))[0]
    edited = await chat_app.http.post(
        "/api/edit",
        params={"user_id": owner},
        json={"session_id": session, "message_id": first_question["id"], "content": "good morning"},
    )
    assert edited.status_code == 202, edited.text
    accepted = edited.json()
    turn = await client.follow(accepted["message_id"])
    assert turn.complete is not None and turn.complete["status"] == "completed"
    assert turn.text == choose_answer("good morning")
    # The next chat continues the new branch.
    await client.follow(await client.chat("and then?"))
    stored = await chat_app.history(session, owner)
    by_id = {m["id"]: m for m in stored}
    q1, a1, q2, a2, q1b, a1b, q3, a3 = stored
    assert [m["content"] for m in (q1, q2, q1b, q3)] == [
        "hello",
        "tell me more",
        "good morning",
        "and then?",
    ]
    # Old branch: q1 -> a1 -> q2 -> a2. New: q1b (a version of q1) -> a1b -> q3 -> a3.
    assert [m.get("parent_id") for m in (q1, a1, q2, a2)] == [None, q1["id"], a1["id"], q2["id"]]
    assert q1b.get("parent_id") is None and q1b["id"] == accepted["user_message_id"]
    assert [m.get("parent_id") for m in (a1b, q3, a3)] == [q1b["id"], a1b["id"], q3["id"]]
    assert len(by_id) == 8


async def test_edit_refuses_what_it_cannot_do(chat_app: InProcessApp) -> None:
    owner, intruder, session = new_user(), new_user(), new_session()
    client = await chat_app.connect(session_id=session, user_id=owner)
    answer = await client.chat("hello")
    await client.follow(answer)
    question = (await chat_app.history(session, owner))[0]["id"]

    async def edit(user: str, message_id: str, content: str = "hi") -> tuple[int, str]:
        response = await chat_app.http.post(
            "/api/edit",
            params={"user_id": user},
            json={"session_id": session, "message_id": message_id, "content": content},
        )
        return response.status_code, response.json()["code"]

    assert await edit(owner, "no-such-message") == (404, "not_found")
    assert await edit(owner, answer) == (404, "not_found")  # an answer is regenerated
    assert await edit(owner, question, "   ") == (422, "invalid_message")
    assert await edit(intruder, question) == (403, "forbidden")
    await client.chat("please explain the stream")
    await client.recv_type("chunk")
    assert await edit(owner, question) == (409, "busy")
