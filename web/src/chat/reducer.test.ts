import { describe, expect, it } from "vitest";
import type { ServerFrame, WelcomeFrame, WireMessage } from "./protocol";
import {
  type ChatAction,
  type ChatState,
  chatReducer,
  initialChatState,
  isGenerating,
  overlaps,
  skipsAhead,
  streamingMessage,
} from "./reducer";

const T = "2026-01-01T00:00:00Z";

function run(state: ChatState, ...actions: ChatAction[]): ChatState {
  return actions.reduce(chatReducer, state);
}

function frames(state: ChatState, ...list: ServerFrame[]): ChatState {
  return run(state, ...list.map((frame) => ({ type: "frame", frame }) as ChatAction));
}

function welcome(offset = 0, epoch = "e1"): WelcomeFrame {
  return { type: "welcome", node: "gw-1", session_id: "s1", user_id: "u1", epoch, offset, protocol: 1 };
}

function wire(partial: Partial<WireMessage> & { id: string }): WireMessage {
  return {
    session_id: "s1",
    role: "assistant",
    content: "",
    status: "streaming",
    created_at: T,
    ...partial,
  };
}

function userMsg(offset: number, id: string, content: string, clientId?: string): ServerFrame {
  return {
    type: "message",
    offset,
    message: wire({ id, role: "user", content, status: "complete", client_id: clientId }),
  };
}

function start(offset: number, id: string): ServerFrame {
  return { type: "message", offset, message: wire({ id }) };
}

function chunk(offset: number, id: string, seq: number, delta: string): ServerFrame {
  return { type: "chunk", offset, message_id: id, seq, delta, ts: 0 };
}

/** A connected tab with an empty session. */
function connected(): ChatState {
  return run(initialChatState("s1"), { type: "frame", frame: welcome(0) }, { type: "opened" });
}

/** A user message (offset 1), an answer start (2) and two chunks (3, 4). */
function midStream(): ChatState {
  return frames(
    connected(),
    userMsg(1, "m1", "hi", "c1"),
    start(2, "a1"),
    chunk(3, "a1", 1, "Hello "),
    chunk(4, "a1", 2, "there"),
  );
}

describe("welcome", () => {
  it("names the session, user and node", () => {
    const state = connected();
    expect(state.sessionId).toBe("s1");
    expect(state.userId).toBe("u1");
    expect(state.node).toBe("gw-1");
    expect(state.epoch).toBe("e1");
    expect(state.connection).toEqual({ status: "connected" });
  });

  it("starts a fresh tab at offset 0 so the retained log replays into it", () => {
    const state = frames(initialChatState("s1"), welcome(42));
    expect(state.epoch).toBe("e1");
    expect(state.offset).toBe(0);
  });

  it("keeps the remembered position on a reconnection", () => {
    const before = midStream();
    const after = frames(before, { ...welcome(99, "e1"), node: "gw-2" });
    expect(after.offset).toBe(4);
    expect(after.epoch).toBe("e1");
    expect(after.node).toBe("gw-2");
    expect(after.messages).toBe(before.messages);
  });

  it("a new chat is idle until its first message", () => {
    expect(initialChatState(null).connection).toEqual({ status: "idle" });
    expect(initialChatState("s1").connection).toEqual({ status: "connecting", attempt: 0 });
  });
});

describe("message, chunk and complete", () => {
  it("streams an answer and completes it with the stored text", () => {
    let state = midStream();
    expect(state.offset).toBe(4);
    expect(state.messages.map((m) => [m.role, m.content, m.status])).toEqual([
      ["user", "hi", "complete"],
      ["assistant", "Hello there", "streaming"],
    ]);
    expect(isGenerating(state)).toBe(true);
    expect(streamingMessage(state)?.id).toBe("a1");
    state = frames(state, {
      type: "complete",
      offset: 5,
      message_id: "a1",
      status: "completed",
      content: "Hello there!",
    });
    expect(state.messages[1]).toMatchObject({ content: "Hello there!", status: "completed" });
    expect(isGenerating(state)).toBe(false);
    expect(streamingMessage(state)).toBeNull();
  });

  it.each(["cancelled", "failed", "interrupted"] as const)("keeps the partial text of a %s answer", (status) => {
    const state = frames(midStream(), {
      type: "complete",
      offset: 5,
      message_id: "a1",
      status,
      content: "Hello there",
      error: status === "failed" ? "model broke" : undefined,
    });
    expect(state.messages[1]).toMatchObject({
      content: "Hello there",
      status,
      error: status === "failed" ? "model broke" : null,
    });
  });

  it("appends a message it did not know at the end", () => {
    const state = frames(connected(), userMsg(1, "m1", "from another tab"));
    expect(state.messages).toHaveLength(1);
    expect(state.messages[0]).toMatchObject({ id: "m1", key: "m1", content: "from another tab" });
  });

  it("shows chunks of an answer whose start it never saw", () => {
    // After a reset (the log lost the start), live chunks carry on from the reset's offset.
    const state = frames(connected(), { type: "reset", epoch: "e1", offset: 6 }, chunk(7, "a9", 4, "tail"));
    expect(state.messages[0]).toMatchObject({ id: "a9", content: "tail", status: "streaming", seq: 4 });
  });

  it("applies a complete for an unknown answer", () => {
    const state = frames(connected(), { type: "reset", epoch: "e1", offset: 2 }, {
      type: "complete",
      offset: 3,
      message_id: "a7",
      status: "completed",
      content: "whole",
    });
    expect(state.messages[0]).toMatchObject({ id: "a7", content: "whole", status: "completed" });
  });

  it("ignores chunks after the answer finished", () => {
    const done = frames(midStream(), {
      type: "complete",
      offset: 5,
      message_id: "a1",
      status: "cancelled",
      content: "Hello there",
    });
    const state = frames(done, chunk(6, "a1", 3, " late"));
    expect(state.messages[1]?.content).toBe("Hello there");
  });
});

describe("offsets and sequence numbers", () => {
  it("ignores any frame at or below the last offset seen", () => {
    const before = midStream();
    const after = frames(before, chunk(4, "a1", 2, "there"), chunk(3, "a1", 1, "Hello "), userMsg(1, "m1", "hi"));
    expect(after).toBe(before);
  });

  it("drops a frame past a gap: it overtook a replay and comes again after it", () => {
    const before = midStream();
    const ahead = frames(before, chunk(6, "a1", 4, " friend"));
    expect(ahead).toBe(before);
    const state = frames(ahead, chunk(5, "a1", 3, ","), chunk(6, "a1", 4, " friend"));
    expect(state.messages[1]?.content).toBe("Hello there, friend");
    expect(state.offset).toBe(6);
  });

  it("ignores a repeated seq even at a new offset", () => {
    const state = frames(midStream(), chunk(5, "a1", 2, "there"));
    expect(state.messages[1]?.content).toBe("Hello there");
    expect(state.offset).toBe(5);
  });

  it("a replayed start of a running answer rebuilds it from its chunks", () => {
    // History gave a partial text of unknown position; the log replays it whole.
    let state = run(
      frames(initialChatState("s1"), welcome(10)),
      { type: "history_loaded", messages: [wire({ id: "a1", content: "Hel" })], sinceOffset: 0 },
    );
    expect(state.messages[0]).toMatchObject({ content: "Hel", seq: null });
    state = frames(state, start(1, "a1"), chunk(2, "a1", 1, "Hello "), chunk(3, "a1", 2, "world"));
    expect(state.messages).toHaveLength(1);
    expect(state.messages[0]).toMatchObject({ content: "Hello world", seq: 2, status: "streaming" });
  });

  it("a replayed start of a finished message changes nothing", () => {
    const done = frames(midStream(), {
      type: "complete",
      offset: 5,
      message_id: "a1",
      status: "completed",
      content: "Hello there",
    });
    const replayed = { ...done, offset: 0 };
    const state = frames(replayed, start(2, "a1"), chunk(3, "a1", 1, "Hello "));
    expect(state.messages[1]).toMatchObject({ content: "Hello there", status: "completed" });
  });
});

describe("resume after a drop", () => {
  it("marks an unconfirmed message unsent, then confirms it from the replay", () => {
    let state = run(connected(), { type: "send", clientId: "c1", content: "hi", createdAt: T });
    state = run(state, { type: "reconnect_scheduled", attempt: 1, retryAt: 1000, closeCode: 1006 });
    expect(state.messages[0]).toMatchObject({ status: "unsent" });
    expect(state.messages[0]?.sendError?.code).toBe("disconnected");
    expect(state.connection).toEqual({ status: "reconnecting", attempt: 1, retryAt: 1000, lastCloseCode: 1006 });
    state = frames(state, welcome(3), userMsg(1, "m1", "hi", "c1"));
    expect(state.messages).toHaveLength(1);
    expect(state.messages[0]).toMatchObject({ id: "m1", key: "local:c1", status: "complete", sendError: null });
  });

  it("continues a stream without gap or duplicate across a drop", () => {
    let state = midStream();
    state = run(state, { type: "reconnect_scheduled", attempt: 1, retryAt: 500, closeCode: 1006 });
    state = run(state, { type: "connecting", attempt: 1 });
    // The new connection's replay overlaps what was already shown (offset 4).
    state = frames(
      state,
      welcome(8),
      chunk(4, "a1", 2, "there"),
      chunk(5, "a1", 3, ", friend"),
      { type: "complete", offset: 6, message_id: "a1", status: "completed", content: "Hello there, friend" },
    );
    expect(state.offset).toBe(6);
    expect(state.messages[1]).toMatchObject({ content: "Hello there, friend", status: "completed" });
  });
});

describe("reset", () => {
  it("takes the server's epoch and offset and waits for history", () => {
    const state = frames(midStream(), { type: "reset", epoch: "e2", offset: 50 });
    expect(state.epoch).toBe("e2");
    expect(state.offset).toBe(50);
    expect(state.history).toBe("loading");
  });

  it("lets history replace what the tab held", () => {
    let state = frames(midStream(), { type: "reset", epoch: "e2", offset: 50 });
    state = run(state, {
      type: "history_loaded",
      sinceOffset: 50,
      messages: [
        wire({ id: "m1", role: "user", content: "hi", status: "complete" }),
        wire({ id: "a1", content: "Hello there", status: "interrupted" }),
      ],
    });
    expect(state.history).toBe("loaded");
    expect(state.messages.map((m) => [m.id, m.status])).toEqual([
      ["m1", "complete"],
      ["a1", "interrupted"],
    ]);
    // Frames of the old epoch's numbering are stale now.
    expect(frames(state, chunk(5, "a1", 3, "x"))).toBe(state);
    // The new numbering carries on after the reset's offset.
    state = frames(state, userMsg(51, "m2", "again"));
    expect(state.messages.at(-1)?.id).toBe("m2");
  });
});

describe("history", () => {
  it("keeps local sends and newer live events that history cannot know", () => {
    let state = frames(initialChatState("s1"), welcome(0));
    state = run(state, { type: "history_loading" });
    state = frames(state, userMsg(1, "m2", "live"));
    state = run(state, { type: "send", clientId: "c9", content: "pending", createdAt: T });
    state = run(state, {
      type: "history_loaded",
      sinceOffset: 0,
      messages: [wire({ id: "m1", role: "user", content: "old", status: "complete" })],
    });
    expect(state.messages.map((m) => m.content)).toEqual(["old", "live", "pending"]);
  });

  it("prefers the further copy of a message", () => {
    let state = frames(midStream(), {
      type: "complete",
      offset: 5,
      message_id: "a1",
      status: "completed",
      content: "Hello there",
    });
    state = run(state, {
      type: "history_loaded",
      sinceOffset: 0,
      messages: [wire({ id: "a1", content: "Hel", status: "streaming" })],
    });
    expect(state.messages.find((m) => m.id === "a1")).toMatchObject({ status: "completed", content: "Hello there" });
  });

  it("records a failed load as a notice", () => {
    const state = run(connected(), { type: "history_failed", detail: "500 Internal Server Error" });
    expect(state.history).toBe("failed");
    expect(state.notices[0]).toMatchObject({ code: "history", detail: "500 Internal Server Error" });
  });
});

describe("errors", () => {
  it("attaches an error with a client_id to that message", () => {
    let state = run(connected(), { type: "send", clientId: "c1", content: "hi", createdAt: T });
    expect(state.messages[0]).toMatchObject({ status: "sending", key: "local:c1" });
    expect(isGenerating(state)).toBe(true);
    state = frames(state, { type: "error", code: "busy", detail: "a generation is running", client_id: "c1" });
    expect(state.messages[0]).toMatchObject({ status: "unsent", sendError: { code: "busy" } });
    expect(isGenerating(state)).toBe(false);
    expect(state.notices).toEqual([]);
  });

  it.each(["rate_limited", "invalid_message", "unavailable", "not_found"])(
    "shows %s without a client_id as a notice",
    (code) => {
      const state = frames(connected(), { type: "error", code, detail: "why" });
      expect(state.notices).toEqual([{ id: 1, code, detail: "why" }]);
    },
  );

  it("keeps a bounded number of notices and dismisses them", () => {
    let state = connected();
    for (let i = 0; i < 5; i++) state = frames(state, { type: "error", code: "busy", detail: `n${i}` });
    expect(state.notices.map((n) => n.detail)).toEqual(["n2", "n3", "n4"]);
    state = run(state, { type: "dismiss_notice", id: state.notices[0]!.id });
    expect(state.notices.map((n) => n.detail)).toEqual(["n3", "n4"]);
  });

  it("send_failed marks the local message", () => {
    let state = run(connected(), { type: "send", clientId: "c1", content: "hi", createdAt: T });
    state = run(state, { type: "send_failed", clientId: "c1", code: "unavailable", detail: "none" });
    expect(state.messages[0]).toMatchObject({ status: "unsent", sendError: { code: "unavailable" } });
  });
});

describe("other frames and connection changes", () => {
  it("pong and reconnect do not change the conversation", () => {
    const state = midStream();
    expect(frames(state, { type: "pong" })).toBe(state);
    expect(frames(state, { type: "reconnect", reason: "draining" })).toBe(state);
  });

  it("tracks offline and closed", () => {
    expect(run(connected(), { type: "offline", reason: "net" }).connection).toEqual({
      status: "offline",
      reason: "net",
    });
    expect(run(connected(), { type: "closed", reason: "4403" }).connection).toEqual({
      status: "closed",
      reason: "4403",
    });
  });
});

describe("a deleted session", () => {
  it("drops its messages, a streaming answer included, and stops generating", () => {
    const before = midStream();
    expect(isGenerating(before)).toBe(true);
    const after = frames(before, { type: "deleted", offset: 5, session_id: "s1" });
    expect(after.deleted).toBe(true);
    expect(after.messages).toEqual([]);
    expect(isGenerating(after)).toBe(false);
    expect(streamingMessage(after)).toBeNull();
    expect(after.connection).toEqual({ status: "closed", reason: "deleted" });
  });

  it("ignores a deletion of another session", () => {
    const before = midStream();
    const after = frames(before, { type: "deleted", offset: 5, session_id: "s2" });
    expect(after).toBe(before);
  });
});

describe("usage of an answer", () => {
  it("comes with its complete frame and from history", () => {
    const usage = { model: "simulated", tokens: 12, ttft_ms: 40, duration_ms: 900 };
    const done = frames(midStream(), {
      type: "complete",
      offset: 5,
      message_id: "a1",
      status: "completed",
      content: "Hello world",
      usage,
    });
    expect(done.messages.at(-1)?.usage).toEqual(usage);
    const loaded = run(connected(), {
      type: "history_loaded",
      messages: [wire({ id: "a9", status: "completed", content: "x", usage })],
      sinceOffset: 0,
    });
    expect(loaded.messages[0]?.usage).toEqual(usage);
  });
});

function snapshot(offset: number, id: string, seq: number, text: string, part = 1, parts = 1): ServerFrame {
  return { type: "snapshot", offset, message_id: id, seq, text, part, parts };
}

describe("snapshot of a running answer", () => {
  it("replaces the text so far, then the tail goes on after its seq", () => {
    const joined = frames(
      connected(),
      userMsg(1, "m1", "hi", "c1"),
      start(2, "a1"),
      snapshot(40, "a1", 38, "Hello there, this is the text so far "),
      chunk(41, "a1", 39, "and "),
      chunk(42, "a1", 40, "more"),
    );
    const answer = joined.messages.at(-1)!;
    expect(answer.content).toBe("Hello there, this is the text so far and more");
    expect(answer.seq).toBe(40);
    expect(joined.offset).toBe(42);
  });

  it("folds in the live chunks that came before it, and drops older ones after it", () => {
    // A live chunk overtook the join's snapshot (same offset): the snapshot still wins.
    const joined = frames(
      connected(),
      chunk(40, "a1", 38, "so far "),
      snapshot(40, "a1", 38, "All the text so far "),
      chunk(39, "a1", 37, "late "),
      chunk(41, "a1", 39, "then"),
    );
    expect(joined.messages.map((m) => m.content)).toEqual(["All the text so far then"]);
  });

  it("assembles a text sent in parts", () => {
    const joined = frames(
      connected(),
      snapshot(900, "a1", 898, "first part, ", 1, 3),
      snapshot(900, "a1", 898, "second part, ", 2, 3),
      snapshot(900, "a1", 898, "third part", 3, 3),
      chunk(901, "a1", 899, "!"),
    );
    expect(joined.messages.at(-1)?.content).toBe("first part, second part, third part!");
    expect(joined.offset).toBe(901);
  });

  it("shows an answer it did not know as streaming, and history does not roll it back", () => {
    const joined = frames(connected(), snapshot(1500, "a7", 1490, "a long text so far"));
    expect(streamingMessage(joined)?.content).toBe("a long text so far");
    const loaded = run(joined, {
      type: "history_loaded",
      messages: [wire({ id: "a7", content: "a long" })],
      sinceOffset: 0,
    });
    expect(loaded.messages.map((m) => m.content)).toEqual(["a long text so far"]);
  });

  it("ignores a snapshot older than what it holds, and one of a finished answer", () => {
    const before = midStream();
    expect(frames(before, snapshot(3, "a1", 1, "Hello "))).toBe(before);
    const done = frames(before, {
      type: "complete",
      offset: 5,
      message_id: "a1",
      status: "completed",
      content: "Hello there",
    });
    expect(frames(done, snapshot(6, "a1", 2, "Hello th")).messages.at(-1)?.content).toBe("Hello there");
  });
});

/** A coalesced chunk (v1.1): chunks `fromSeq` .. `seq` at offsets `from` .. `offset`, joined. */
function coalesced(from: number, offset: number, id: string, fromSeq: number, delta: string): ServerFrame {
  return {
    type: "chunk",
    offset,
    from_offset: from,
    message_id: id,
    seq: fromSeq + offset - from,
    from_seq: fromSeq,
    delta,
    ts: 0,
  };
}

describe("coalesced chunks", () => {
  it("one starting at the next offset advances to its last offset, not a gap", () => {
    const state = frames(midStream(), coalesced(5, 9, "a1", 3, ", how are you"), chunk(10, "a1", 8, "?"));
    expect(state.messages.at(-1)?.content).toBe("Hello there, how are you?");
    expect(state.messages.at(-1)?.seq).toBe(8);
    expect(state.offset).toBe(10);
  });

  it("drops one past a gap, and takes it when it comes again after the replay", () => {
    const before = midStream();
    const ahead = frames(before, coalesced(6, 9, "a1", 4, "how are you"));
    expect(ahead).toBe(before);
    expect(skipsAhead(before, coalesced(6, 9, "a1", 4, "how are you"))).toBe(true);
    const replayed = frames(ahead, chunk(5, "a1", 3, ", "), coalesced(6, 9, "a1", 4, "how are you"));
    expect(replayed.messages.at(-1)?.content).toBe("Hello there, how are you");
    expect(replayed.offset).toBe(9);
  });

  it("drops a repeat whole, and never applies part of one it partly holds", () => {
    const before = frames(midStream(), coalesced(5, 9, "a1", 3, ", how are you"));
    expect(frames(before, coalesced(5, 9, "a1", 3, ", how are you"))).toBe(before);
    const overlapping = coalesced(8, 12, "a1", 6, "are you? Fine");
    expect(overlaps(before, overlapping)).toBe(true);
    expect(frames(before, overlapping)).toBe(before);
    expect(overlaps(before, coalesced(10, 12, "a1", 8, "? Fine"))).toBe(false);
  });

  it("resumes from its last offset after a reconnection", () => {
    const before = frames(midStream(), coalesced(5, 9, "a1", 3, ", how are you"));
    const back = frames(before, welcome(20));
    expect(back.offset).toBe(9);
  });
});
