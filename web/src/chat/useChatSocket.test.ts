import { act, renderHook } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { ClientFrame, ServerFrame, WireMessage } from "./protocol";
import {
  ChatConnection,
  type ChatConnectionOptions,
  PING_INTERVAL_MS,
  REFRESH_MARGIN_MS,
  type SocketLike,
  useChatSocket,
} from "./useChatSocket";

/** A test double of the browser WebSocket: the test plays the server. */
class FakeSocket implements SocketLike {
  static all: FakeSocket[] = [];
  readyState = 0;
  onopen: ((event: Event) => void) | null = null;
  onmessage: ((event: MessageEvent) => void) | null = null;
  onclose: ((event: CloseEvent) => void) | null = null;
  onerror: ((event: Event) => void) | null = null;
  readonly sent: ClientFrame[] = [];
  closedWith: number | null = null;

  constructor(readonly url: string) {
    FakeSocket.all.push(this);
  }

  static last(): FakeSocket {
    const socket = FakeSocket.all.at(-1);
    if (!socket) throw new Error("no socket was opened");
    return socket;
  }

  open(): void {
    this.readyState = 1;
    this.onopen?.(new Event("open"));
  }

  receive(...frames: ServerFrame[]): void {
    for (const frame of frames) this.onmessage?.({ data: JSON.stringify(frame) } as MessageEvent);
  }

  drop(code = 1006, reason = ""): void {
    this.readyState = 3;
    this.onclose?.({ code, reason } as CloseEvent);
  }

  send(data: string): void {
    this.sent.push(JSON.parse(data) as ClientFrame);
  }

  close(code = 1005, reason = ""): void {
    this.closedWith = code;
    if (this.readyState === 3) return;
    this.readyState = 3;
    // Like a browser: the close event comes later, not inside close().
    queueMicrotask(() => this.onclose?.({ code, reason } as CloseEvent));
  }
}

const T = "2026-01-01T00:00:00Z";

function welcome(offset: number, epoch = "e1", node = "gw-1", session = "s1"): ServerFrame {
  return { type: "welcome", node, session_id: session, user_id: "u1", epoch, offset, protocol: 1 };
}

function stored(id: string, role: "user" | "assistant", content: string, status: WireMessage["status"]): WireMessage {
  return { id, session_id: "s1", role, content, status, created_at: T };
}

let history: WireMessage[];
let historyCalls: number;

function options(overrides: Partial<ChatConnectionOptions> = {}): ChatConnectionOptions {
  return {
    sessionId: "s1",
    userId: "u1",
    createSocket: (url) => new FakeSocket(url),
    socketUrl: (sessionId, userId) => `ws://test/ws/chat?session_id=${sessionId ?? ""}&user_id=${userId}`,
    loadHistory: async () => {
      historyCalls += 1;
      return history;
    },
    random: () => 0.5,
    now: () => Date.now(),
    newClientId: () => `c${FakeSocket.all.length}-${Math.random().toString(36).slice(2, 6)}`,
    ...overrides,
  };
}

async function flush(): Promise<void> {
  await act(async () => {
    await Promise.resolve();
    await Promise.resolve();
  });
}

beforeEach(() => {
  FakeSocket.all = [];
  history = [];
  historyCalls = 0;
  vi.useFakeTimers({ now: new Date("2026-01-01T00:00:00Z") });
});

afterEach(() => {
  vi.useRealTimers();
});

describe("ChatConnection", () => {
  it("connects with a fresh one-time ticket and refreshes it before the credential expires", async () => {
    const expiresAt = Date.now() / 1000 + 40; // refreshed 10 s in, before any ping
    const issued: string[] = [];
    const ticket = async () => {
      issued.push(`t${issued.length + 1}`);
      return { ticket: `t${issued.length}`, expires_in: 30, expires_at: expiresAt + 600 * (issued.length - 1) };
    };
    const conn = new ChatConnection(options({ ticket }));
    conn.start();
    expect(FakeSocket.all).toHaveLength(0); // the ticket comes first
    await flush();
    const socket = FakeSocket.last();
    expect(new URL(socket.url).searchParams.get("ticket")).toBe("t1");
    socket.open();
    socket.receive(welcome(0));
    vi.advanceTimersByTime(40_000 - REFRESH_MARGIN_MS - 1);
    await flush();
    expect(socket.sent.filter((f) => f.type === "refresh")).toEqual([]);
    vi.advanceTimersByTime(1);
    await flush();
    expect(socket.sent.filter((f) => f.type === "refresh")).toEqual([{ type: "refresh", ticket: "t2" }]);
    // A reconnect never reuses a ticket.
    socket.drop(1006);
    vi.runOnlyPendingTimers();
    await flush();
    expect(new URL(FakeSocket.last().url).searchParams.get("ticket")).toBe("t3");
    conn.stop();
  });

  it("opens the session's socket, loads history and asks for the retained log", async () => {
    history = [stored("m1", "user", "hi", "complete"), stored("a1", "assistant", "Hello", "completed")];
    const conn = new ChatConnection(options());
    conn.start();
    const socket = FakeSocket.last();
    expect(socket.url).toBe("ws://test/ws/chat?session_id=s1&user_id=u1&coalesce=1");
    expect(conn.getState().connection.status).toBe("connecting");
    socket.open();
    socket.receive(welcome(2));
    expect(conn.getState().connection).toEqual({ status: "connected" });
    expect(conn.getState().node).toBe("gw-1");
    expect(socket.sent).toEqual([{ type: "resume", epoch: "e1", offset: 0, snapshot: true }]);
    await flush();
    expect(historyCalls).toBe(1);
    expect(conn.getState().messages.map((m) => m.content)).toEqual(["hi", "Hello"]);
    // The replay of the log is absorbed without duplicates.
    socket.receive(
      { type: "message", offset: 1, message: { ...stored("m1", "user", "hi", "complete") } },
      { type: "message", offset: 2, message: { ...stored("a1", "assistant", "", "streaming") } },
    );
    expect(conn.getState().messages).toHaveLength(2);
    expect(conn.getState().messages[1]).toMatchObject({ status: "completed", content: "Hello" });
    conn.stop();
  });

  it("does not ask for a replay of an empty log", () => {
    const conn = new ChatConnection(options());
    conn.start();
    FakeSocket.last().open();
    FakeSocket.last().receive(welcome(0));
    expect(FakeSocket.last().sent).toEqual([]);
    conn.stop();
  });

  it("sends a chat with a client_id and matches the echo to it", () => {
    const conn = new ChatConnection(options({ newClientId: () => "c-1" }));
    conn.start();
    const socket = FakeSocket.last();
    socket.open();
    socket.receive(welcome(0));
    expect(conn.send("  hello  ")).toBe(true);
    expect(socket.sent).toEqual([{ type: "chat", content: "hello", client_id: "c-1" }]);
    expect(conn.getState().messages[0]).toMatchObject({ status: "sending", content: "hello" });
    socket.receive({
      type: "message",
      offset: 1,
      message: { ...stored("m1", "user", "hello", "complete"), client_id: "c-1" },
    });
    expect(conn.getState().messages).toHaveLength(1);
    expect(conn.getState().messages[0]).toMatchObject({ id: "m1", status: "complete" });
    conn.stop();
  });

  it("refuses empty text, and too-long text with a notice", () => {
    const conn = new ChatConnection(options());
    conn.start();
    FakeSocket.last().open();
    FakeSocket.last().receive(welcome(0));
    expect(conn.send("   ")).toBe(false);
    expect(conn.send("x".repeat(16_001))).toBe(false);
    expect(FakeSocket.last().sent).toEqual([]);
    expect(conn.getState().notices[0]?.code).toBe("invalid_message");
    conn.stop();
  });

  it("sends nothing before the welcome", () => {
    const conn = new ChatConnection(options());
    conn.start();
    FakeSocket.last().open();
    expect(conn.send("hi")).toBe(false);
    expect(conn.cancel("a1")).toBe(false);
    expect(FakeSocket.last().sent).toEqual([]);
    conn.stop();
  });

  it("cancels a running answer by its message id", () => {
    const conn = new ChatConnection(options());
    conn.start();
    const socket = FakeSocket.last();
    socket.open();
    socket.receive(welcome(0));
    expect(conn.cancel("a1")).toBe(true);
    expect(socket.sent).toEqual([{ type: "cancel", message_id: "a1" }]);
    conn.stop();
  });

  it("reconnects with jittered backoff and resumes from the last offset seen", () => {
    const conn = new ChatConnection(options());
    conn.start();
    const first = FakeSocket.last();
    first.open();
    first.receive(
      welcome(0),
      { type: "message", offset: 1, message: stored("a1", "assistant", "", "streaming") },
      { type: "chunk", offset: 2, message_id: "a1", seq: 1, delta: "Hel", ts: 0 },
    );
    first.drop(1006);
    const connection = conn.getState().connection;
    expect(connection.status).toBe("reconnecting");
    // random() = 0.5 of the first ceiling (500 ms).
    expect(connection).toMatchObject({ attempt: 1, retryAt: Date.now() + 250, lastCloseCode: 1006 });
    vi.advanceTimersByTime(249);
    expect(FakeSocket.all).toHaveLength(1);
    vi.advanceTimersByTime(1);
    const second = FakeSocket.last();
    expect(second).not.toBe(first);
    second.open();
    second.receive(welcome(5, "e1", "gw-2"));
    expect(second.sent).toEqual([{ type: "resume", epoch: "e1", offset: 2, snapshot: true }]);
    expect(conn.getState().node).toBe("gw-2");
    // The replay repeats offset 2, then carries on.
    second.receive(
      { type: "chunk", offset: 2, message_id: "a1", seq: 1, delta: "Hel", ts: 0 },
      { type: "chunk", offset: 3, message_id: "a1", seq: 2, delta: "lo", ts: 0 },
      { type: "complete", offset: 4, message_id: "a1", status: "completed", content: "Hello" },
    );
    expect(conn.getState().messages).toHaveLength(1);
    expect(conn.getState().messages[0]).toMatchObject({ content: "Hello", status: "completed" });
    expect(conn.getState().offset).toBe(4);
    conn.stop();
  });

  it("drops live events that overtook its resume and asks again only for a new gap", () => {
    const conn = new ChatConnection(options());
    conn.start();
    const first = FakeSocket.last();
    first.open();
    first.receive(
      welcome(0),
      { type: "message", offset: 1, message: stored("a1", "assistant", "", "streaming") },
      { type: "chunk", offset: 2, message_id: "a1", seq: 1, delta: "Hel", ts: 0 },
    );
    first.drop(1006);
    vi.advanceTimersByTime(1000);
    const second = FakeSocket.last();
    second.open();
    // Welcomed at 4; chunk 5 goes out live before the answer to our resume from 2.
    second.receive(welcome(4), { type: "chunk", offset: 5, message_id: "a1", seq: 4, delta: "!", ts: 0 });
    expect(second.sent).toEqual([{ type: "resume", epoch: "e1", offset: 2, snapshot: true }]);
    expect(conn.getState().offset).toBe(2);
    // The replay, then chunk 5 again (the server re-sends what overtook it).
    second.receive(
      { type: "chunk", offset: 3, message_id: "a1", seq: 2, delta: "lo", ts: 0 },
      { type: "chunk", offset: 4, message_id: "a1", seq: 3, delta: " you", ts: 0 },
      { type: "chunk", offset: 5, message_id: "a1", seq: 4, delta: "!", ts: 0 },
    );
    expect(conn.getState().messages[0]?.content).toBe("Hello you!");
    expect(conn.getState().offset).toBe(5);
    // A gap with no resume in flight asks for one, once.
    second.receive(
      { type: "chunk", offset: 7, message_id: "a1", seq: 6, delta: "?", ts: 0 },
      { type: "chunk", offset: 8, message_id: "a1", seq: 7, delta: "?", ts: 0 },
    );
    expect(second.sent.slice(1)).toEqual([{ type: "resume", epoch: "e1", offset: 5, snapshot: true }]);
    conn.stop();
  });

  it("grows the backoff ceiling while attempts fail and resets it on welcome", () => {
    const conn = new ChatConnection(options({ random: () => 0.999 }));
    conn.start();
    const delays: number[] = [];
    for (let i = 0; i < 8; i++) {
      FakeSocket.last().drop(1006);
      const state = conn.getState().connection;
      if (state.status !== "reconnecting") throw new Error(state.status);
      delays.push(state.retryAt - Date.now());
      vi.advanceTimersByTime(state.retryAt - Date.now());
    }
    expect(delays).toEqual([499, 999, 1998, 3996, 7992, 15984, 19980, 19980]);
    FakeSocket.last().open();
    FakeSocket.last().receive(welcome(0));
    FakeSocket.last().drop(1006);
    const state = conn.getState().connection;
    expect(state).toMatchObject({ status: "reconnecting", attempt: 1 });
    conn.stop();
  });

  it("counts down and can retry at once", () => {
    const conn = new ChatConnection(options());
    conn.start();
    FakeSocket.last().drop(1006);
    expect(FakeSocket.all).toHaveLength(1);
    conn.retryNow();
    expect(FakeSocket.all).toHaveLength(2);
    expect(conn.getState().connection.status).toBe("connecting");
    conn.stop();
  });

  it("reloads history on reset and carries on from the reset's offset", async () => {
    const conn = new ChatConnection(options());
    conn.start();
    const socket = FakeSocket.last();
    socket.open();
    socket.receive(welcome(0));
    await flush();
    expect(historyCalls).toBe(1);
    socket.receive(
      { type: "message", offset: 1, message: stored("a1", "assistant", "", "streaming") },
      { type: "chunk", offset: 2, message_id: "a1", seq: 1, delta: "Hel", ts: 0 },
    );
    history = [stored("a1", "assistant", "Hel", "interrupted")];
    socket.receive({ type: "reset", epoch: "e2", offset: 7 });
    expect(conn.getState().history).toBe("loading");
    await flush();
    expect(historyCalls).toBe(2);
    expect(conn.getState()).toMatchObject({ epoch: "e2", offset: 7, history: "loaded" });
    expect(conn.getState().messages[0]).toMatchObject({ status: "interrupted", content: "Hel" });
    socket.receive({ type: "message", offset: 8, message: stored("m2", "user", "next", "complete") });
    expect(conn.getState().messages).toHaveLength(2);
    conn.stop();
  });

  it("pings every 30 s and treats a missing pong as a dead socket", () => {
    const conn = new ChatConnection(options());
    conn.start();
    const socket = FakeSocket.last();
    socket.open();
    socket.receive(welcome(0));
    vi.advanceTimersByTime(PING_INTERVAL_MS);
    expect(socket.sent).toEqual([{ type: "ping" }]);
    socket.receive({ type: "pong" });
    vi.advanceTimersByTime(PING_INTERVAL_MS);
    expect(socket.sent).toEqual([{ type: "ping" }, { type: "ping" }]);
    // No pong this time: at the next tick the socket is given up.
    vi.advanceTimersByTime(PING_INTERVAL_MS);
    expect(socket.closedWith).toBe(4000);
    expect(conn.getState().connection.status).toBe("reconnecting");
    conn.stop();
  });

  it("does not reconnect after 4403 and says why", () => {
    const conn = new ChatConnection(options());
    conn.start();
    FakeSocket.last().drop(4403);
    expect(conn.getState().connection).toEqual({
      status: "closed",
      reason: "This conversation belongs to another user.",
    });
    vi.advanceTimersByTime(60_000);
    expect(FakeSocket.all).toHaveLength(1);
    conn.stop();
  });

  it("leaves a draining node at once when told to reconnect", async () => {
    const conn = new ChatConnection(options());
    conn.start();
    const socket = FakeSocket.last();
    socket.open();
    socket.receive(welcome(0));
    socket.receive({ type: "reconnect", reason: "draining" });
    expect(socket.closedWith).toBe(1000);
    await flush();
    const state = conn.getState().connection;
    expect(state.status).toBe("reconnecting");
    if (state.status === "reconnecting") expect(state.retryAt - Date.now()).toBeLessThan(500);
    conn.stop();
  });

  it("asks for coalesced chunks and shows one as the text it joins", () => {
    const conn = new ChatConnection(options());
    conn.start();
    const socket = FakeSocket.last();
    expect(new URL(socket.url).searchParams.get("coalesce")).toBe("1");
    socket.open();
    socket.receive(
      welcome(0),
      { type: "message", offset: 1, message: stored("a1", "assistant", "", "streaming") },
      { type: "chunk", offset: 2, message_id: "a1", seq: 1, delta: "Hel", ts: 0 },
      { type: "chunk", offset: 5, from_offset: 3, message_id: "a1", seq: 4, from_seq: 2, delta: "lo, you", ts: 0 },
    );
    expect(conn.getState().messages.at(-1)?.content).toBe("Hello, you");
    expect(conn.getState().offset).toBe(5);
    expect(socket.sent.filter((f) => f.type === "resume")).toEqual([]);
    conn.stop();
  });

  it("starts again and resumes when a coalesced chunk overlaps what it holds", async () => {
    const conn = new ChatConnection(options());
    conn.start();
    const first = FakeSocket.last();
    first.open();
    first.receive(
      welcome(0),
      { type: "message", offset: 1, message: stored("a1", "assistant", "", "streaming") },
      { type: "chunk", offset: 2, message_id: "a1", seq: 1, delta: "Hel", ts: 0 },
      { type: "chunk", offset: 4, from_offset: 2, message_id: "a1", seq: 3, from_seq: 1, delta: "Hello", ts: 0 },
    );
    expect(first.closedWith).toBe(1000);
    expect(conn.getState().messages.at(-1)?.content).toBe("Hel");
    await flush();
    vi.runOnlyPendingTimers();
    const second = FakeSocket.last();
    expect(second).not.toBe(first);
    second.open();
    second.receive(welcome(4));
    expect(second.sent).toEqual([{ type: "resume", epoch: "e1", offset: 2, snapshot: true }]);
    second.receive({ type: "chunk", offset: 4, from_offset: 3, message_id: "a1", seq: 3, from_seq: 2, delta: "lo", ts: 0 });
    expect(conn.getState().messages.at(-1)?.content).toBe("Hello");
    conn.stop();
  });

  it("waits for the browser to come online", () => {
    const online = vi.spyOn(navigator, "onLine", "get").mockReturnValue(false);
    const conn = new ChatConnection(options());
    conn.start();
    expect(FakeSocket.all).toHaveLength(0);
    expect(conn.getState().connection.status).toBe("offline");
    online.mockReturnValue(true);
    window.dispatchEvent(new Event("online"));
    expect(FakeSocket.all).toHaveLength(1);
    conn.stop();
  });

  it("opens a new chat only when its first message is sent", () => {
    const created: string[] = [];
    const conn = new ChatConnection(
      options({ sessionId: null, newClientId: () => "c-1", onSessionCreated: (id) => created.push(id) }),
    );
    conn.start();
    expect(FakeSocket.all).toHaveLength(0);
    expect(conn.getState().connection.status).toBe("idle");
    expect(conn.send("first")).toBe(true);
    const socket = FakeSocket.last();
    expect(socket.url).toBe("ws://test/ws/chat?session_id=&user_id=u1&coalesce=1");
    socket.open();
    expect(socket.sent).toEqual([]);
    socket.receive(welcome(0, "e1", "gw-1", "new-session"));
    expect(created).toEqual(["new-session"]);
    expect(socket.sent).toEqual([{ type: "chat", content: "first", client_id: "c-1" }]);
    expect(conn.getState().sessionId).toBe("new-session");
    expect(historyCalls).toBe(0);
    conn.stop();
  });

  it("closes the socket and stops its timers on stop", () => {
    const conn = new ChatConnection(options());
    conn.start();
    const socket = FakeSocket.last();
    socket.open();
    socket.receive(welcome(0));
    conn.stop();
    expect(socket.closedWith).toBe(1000);
    vi.advanceTimersByTime(5 * PING_INTERVAL_MS);
    expect(socket.sent).toEqual([]);
    expect(FakeSocket.all).toHaveLength(1);
  });
});

describe("useChatSocket", () => {
  it("renders frames as they arrive", async () => {
    const { result, unmount } = renderHook(() => useChatSocket(options()));
    const socket = FakeSocket.last();
    act(() => {
      socket.open();
      socket.receive(
        welcome(0),
        { type: "message", offset: 1, message: stored("a1", "assistant", "", "streaming") },
        { type: "chunk", offset: 2, message_id: "a1", seq: 1, delta: "Hi", ts: 0 },
      );
    });
    expect(result.current.state.connection.status).toBe("connected");
    expect(result.current.state.messages[0]).toMatchObject({ content: "Hi", status: "streaming" });
    await flush();
    unmount();
    expect(socket.closedWith).toBe(1000);
  });

  it("keeps the connection when adopting a created session and opens another on switching", async () => {
    let props = { sessionId: null as string | null, conversation: 0 };
    const { result, rerender, unmount } = renderHook(() =>
      useChatSocket(options({ sessionId: props.sessionId, conversation: props.conversation } as never)),
    );
    expect(FakeSocket.all).toHaveLength(0);
    act(() => {
      result.current.send("hello");
    });
    const first = FakeSocket.last();
    act(() => {
      first.open();
      first.receive(welcome(0, "e1", "gw-1", "created"));
    });
    props = { sessionId: "created", conversation: 0 };
    rerender();
    expect(FakeSocket.all).toHaveLength(1);
    expect(result.current.state.sessionId).toBe("created");
    props = { sessionId: "other", conversation: 1 };
    rerender();
    await flush();
    expect(FakeSocket.all).toHaveLength(2);
    expect(FakeSocket.last().url).toContain("session_id=other");
    expect(first.closedWith).toBe(1000);
    expect(result.current.state.messages).toEqual([]);
    unmount();
  });
});
