// The pure state machine of one chat tab: every server frame, every local
// action and every connection change goes through `chatReducer`, so the whole
// behaviour can be tested without a browser or a socket.
//
// Guarantees:
// - A frame carrying an `offset` is applied at most once and in order: anything at
//   or below the last offset seen is dropped (replays after a resume overlap live
//   events), and so is one past a gap (it overtook a replay; it comes again).
// - Within an assistant message, chunks are applied in `seq` order, once each;
//   `complete` replaces the text with the stored content, so the final text is
//   exact even if a chunk was missed.
// - A coalesced `chunk` (v1.1, the connection asks with `coalesce=1`: several chunks
//   of one answer in one frame when the tab reads slower than the answer streams)
//   covers `from_offset` .. `offset` and `from_seq` .. `seq`: it is taken whole when
//   `from_offset` is the next offset, and moves the position to `offset`.
// - A `snapshot` (the text of a running answer as of its offset, instead of a
//   replay of its chunks) replaces that answer's text and `seq`; its parts
//   share one offset and are appended in order; chunks go on after its `seq`.
// - On the welcome of a reconnection the remembered epoch and offset are kept,
//   so the connection can `resume` from them; only a `reset` moves them.

import type {
  ChunkFrame,
  CompleteFrame,
  Epoch,
  ErrorCode,
  ErrorFrame,
  MessageFrame,
  ServerFrame,
  SnapshotFrame,
  WireMessage,
  WireStatus,
} from "./protocol";
import type { Usage } from "./wire";

export type MessageStatus = WireStatus | "sending" | "unsent";

export interface ChatMessage {
  /** Stable React key: the server id, or `local:<client_id>` before the server confirmed it. */
  key: string;
  id: string | null;
  clientId: string | null;
  role: "user" | "assistant";
  content: string;
  status: MessageStatus;
  createdAt: string;
  /** Why a generation failed (from `complete.error`). */
  error: string | null;
  /** Why a user message was not accepted (from an `error` frame with its `client_id`). */
  sendError: { code: ErrorCode; detail: string } | null;
  /** Last chunk `seq` applied; `null` when the text came from history and the position is unknown. */
  seq: number | null;
  /** Offset of the last frame that touched this message (-1: from history or local). */
  lastOffset: number;
  /** What a finished answer cost (model, tokens, time to first token, duration). */
  usage?: Usage;
  /** An answer's user message: answers sharing it are alternatives ("2 / 2"). */
  replyTo?: string;
  /** The message it follows (null: the first; absent: not known yet). Messages with one
   *  parent are versions of each other: edited questions, regenerated answers. */
  parentId?: string | null;
}

export interface Notice {
  id: number;
  code: ErrorCode;
  detail: string;
}

export type ConnectionState =
  | { status: "idle" }
  | { status: "connecting"; attempt: number }
  | { status: "connected" }
  | { status: "reconnecting"; attempt: number; retryAt: number; lastCloseCode: number | null }
  | { status: "offline"; reason: string }
  | { status: "closed"; reason: string };

export type HistoryState = "idle" | "loading" | "loaded" | "failed";

export interface ChatState {
  sessionId: string | null;
  userId: string | null;
  node: string | null;
  epoch: Epoch | null;
  /** Last offset seen in `epoch`; frames at or below it are duplicates. */
  offset: number;
  messages: ChatMessage[];
  notices: Notice[];
  history: HistoryState;
  connection: ConnectionState;
  nextNoticeId: number;
  /** The session was deleted (here or in another tab): nothing more will come. */
  deleted: boolean;
}

export type ChatAction =
  | { type: "frame"; frame: ServerFrame }
  | { type: "send"; clientId: string; content: string; createdAt: string }
  | { type: "send_failed"; clientId: string; code: ErrorCode; detail: string }
  | { type: "history_loading" }
  | { type: "history_loaded"; messages: WireMessage[]; sinceOffset: number }
  | { type: "history_failed"; detail: string }
  | { type: "connecting"; attempt: number }
  | { type: "opened" }
  | { type: "reconnect_scheduled"; attempt: number; retryAt: number; closeCode: number | null }
  | { type: "offline"; reason: string }
  | { type: "closed"; reason: string }
  | { type: "dismiss_notice"; id: number }
  | { type: "notice"; code: ErrorCode; detail: string };

/** At most this many error notices are kept on screen; older ones drop off. */
export const MAX_NOTICES = 3;

export function initialChatState(sessionId: string | null): ChatState {
  return {
    sessionId,
    userId: null,
    node: null,
    epoch: null,
    offset: 0,
    messages: [],
    notices: [],
    history: "idle",
    // A new chat (no session yet) connects only when its first message is sent.
    connection: sessionId === null ? { status: "idle" } : { status: "connecting", attempt: 0 },
    nextNoticeId: 1,
    deleted: false,
  };
}

/** A stored message as UI state; `offset` is set when it came in a live `message` frame. */
export function fromWire(message: WireMessage, offset = -1): ChatMessage {
  return {
    key: message.id,
    id: message.id,
    clientId: message.client_id ?? null,
    role: message.role,
    content: message.content ?? "",
    status: message.status,
    createdAt: message.created_at,
    error: message.error ?? null,
    sendError: null,
    // A live start frame is followed by chunk 1; history of a running answer may lag behind.
    seq: message.status === "streaming" && offset >= 0 ? 0 : null,
    lastOffset: offset,
    ...(message.usage ? { usage: message.usage } : {}),
    ...(message.reply_to ? { replyTo: message.reply_to } : {}),
    ...(message.parent_id !== undefined ? { parentId: message.parent_id } : {}),
  };
}

export function isFinal(status: MessageStatus): boolean {
  return status !== "streaming" && status !== "sending";
}

/** The assistant message currently being generated, if any. */
export function streamingMessage(state: ChatState): ChatMessage | null {
  for (let i = state.messages.length - 1; i >= 0; i--) {
    const message = state.messages[i]!;
    if (message.role === "assistant" && message.status === "streaming") return message;
  }
  return null;
}

/** True while a user message waits for its answer or an answer is streaming. */
export function isGenerating(state: ChatState): boolean {
  return state.messages.some(
    (m) => m.status === "sending" || (m.role === "assistant" && m.status === "streaming"),
  );
}

function addNotice(state: ChatState, code: ErrorCode, detail: string): ChatState {
  const notices = [...state.notices, { id: state.nextNoticeId, code, detail }].slice(-MAX_NOTICES);
  return { ...state, notices, nextNoticeId: state.nextNoticeId + 1 };
}

function replaceAt(messages: ChatMessage[], index: number, message: ChatMessage): ChatMessage[] {
  const next = messages.slice();
  next[index] = message;
  return next;
}

/** The first log offset a frame covers: a coalesced chunk's `from_offset` (it covers
 *  `from_offset` .. `offset`, its `delta` theirs joined), else its `offset`. */
export function firstOffset(frame: MessageFrame | ChunkFrame | CompleteFrame): number {
  return frame.type === "chunk" && typeof frame.from_offset === "number" ? frame.from_offset : frame.offset;
}

/** Accept an offset-carrying frame: `null` when it is a duplicate or comes after a gap,
 *  else the state with the new offset (a coalesced chunk's last one). A frame after a gap
 *  overtook the answer to our `resume` (sent at once after a reconnection's welcome):
 *  taking it would skip its predecessors for good, and the server sends it again after
 *  them (docs/protocol.md). A coalesced chunk is taken whole or not at all: one that
 *  overlaps what we hold (the server never sends one) is dropped, see `overlaps`. */
function advance(state: ChatState, frame: MessageFrame | ChunkFrame | CompleteFrame): ChatState | null {
  const offset = frame.offset;
  if (typeof offset !== "number" || offset <= state.offset) return null;
  const first = firstOffset(frame);
  if (first > state.offset + 1 && state.epoch !== null) return null;
  if (first <= state.offset) return null;
  return { ...state, offset };
}

/** Whether `frame` is a log frame past a gap in what this tab holds (see `advance`). */
export function skipsAhead(state: ChatState, frame: ServerFrame): boolean {
  if (frame.type !== "message" && frame.type !== "chunk" && frame.type !== "complete") return false;
  return state.epoch !== null && firstOffset(frame) > state.offset + 1;
}

/** Whether `frame` is a coalesced chunk covering offsets this tab holds and newer ones:
 *  its delta cannot be cut, so the connection starts again and resumes from our offset. */
export function overlaps(state: ChatState, frame: ServerFrame): boolean {
  return frame.type === "chunk" && firstOffset(frame) <= state.offset && frame.offset > state.offset;
}

function applyMessage(state: ChatState, frame: MessageFrame): ChatState {
  const wire = frame.message;
  const incoming = fromWire(wire, frame.offset);
  let index = state.messages.findIndex((m) => m.id === wire.id);
  if (index < 0 && wire.client_id) {
    index = state.messages.findIndex((m) => m.id === null && m.clientId === wire.client_id);
  }
  if (index < 0) return { ...state, messages: [...state.messages, incoming] };
  const existing = state.messages[index]!;
  // A replayed start of a finished message changes nothing; a replayed start of a
  // running one is followed by its chunks from seq 1, which rebuild the text exactly.
  if (isFinal(existing.status) && existing.status !== "unsent" && !isFinal(incoming.status)) {
    return { ...state, messages: replaceAt(state.messages, index, { ...existing, lastOffset: frame.offset }) };
  }
  const merged: ChatMessage = { ...incoming, key: existing.key };
  return { ...state, messages: replaceAt(state.messages, index, merged) };
}

function applySnapshot(state: ChatState, frame: SnapshotFrame): ChatState {
  // Parts share their offset, and a live chunk at that very offset may have come
  // first (its text alone): a snapshot is accepted at the offset reached, not only after.
  if (typeof frame.offset !== "number" || frame.offset < state.offset) return state;
  const next = { ...state, offset: frame.offset };
  const index = next.messages.findIndex((m) => m.id === frame.message_id);
  if (index < 0) {
    if (frame.part !== 1) return next;
    const placeholder: ChatMessage = {
      key: frame.message_id,
      id: frame.message_id,
      clientId: null,
      role: "assistant",
      content: frame.text,
      status: "streaming",
      createdAt: new Date(0).toISOString(),
      error: null,
      sendError: null,
      seq: frame.seq,
      lastOffset: frame.offset,
    };
    return { ...next, messages: [...next.messages, placeholder] };
  }
  const message = next.messages[index]!;
  if (message.status !== "streaming") return next;
  const content = frame.part === 1 ? frame.text : message.content + frame.text;
  return {
    ...next,
    messages: replaceAt(next.messages, index, { ...message, content, seq: frame.seq, lastOffset: frame.offset }),
  };
}

function applyChunk(state: ChatState, frame: ChunkFrame): ChatState {
  const index = state.messages.findIndex((m) => m.id === frame.message_id);
  if (index < 0) {
    // The start of this message is behind our position (e.g. after a reset): show what comes.
    const placeholder: ChatMessage = {
      key: frame.message_id,
      id: frame.message_id,
      clientId: null,
      role: "assistant",
      content: frame.delta,
      status: "streaming",
      createdAt: new Date(0).toISOString(),
      error: null,
      sendError: null,
      seq: frame.seq,
      lastOffset: frame.offset,
    };
    return { ...state, messages: [...state.messages, placeholder] };
  }
  const message = state.messages[index]!;
  if (message.status !== "streaming") return state;
  // A coalesced chunk covers `from_seq` .. `seq`: none of them may be applied twice.
  if (message.seq !== null && (frame.from_seq ?? frame.seq) <= message.seq) return state;
  return {
    ...state,
    messages: replaceAt(state.messages, index, {
      ...message,
      content: message.content + frame.delta,
      seq: frame.seq,
      lastOffset: frame.offset,
    }),
  };
}

function applyComplete(state: ChatState, frame: CompleteFrame): ChatState {
  const index = state.messages.findIndex((m) => m.id === frame.message_id);
  const base: ChatMessage =
    index >= 0
      ? state.messages[index]!
      : {
          key: frame.message_id,
          id: frame.message_id,
          clientId: null,
          role: "assistant",
          content: "",
          status: "streaming",
          createdAt: new Date(0).toISOString(),
          error: null,
          sendError: null,
          seq: null,
          lastOffset: frame.offset,
        };
  const done: ChatMessage = {
    ...base,
    status: frame.status,
    content: typeof frame.content === "string" ? frame.content : base.content,
    error: frame.error ?? null,
    lastOffset: frame.offset,
    ...(frame.usage ? { usage: frame.usage } : {}),
  };
  const messages = index >= 0 ? replaceAt(state.messages, index, done) : [...state.messages, done];
  return { ...state, messages };
}

function applyError(state: ChatState, frame: ErrorFrame): ChatState {
  if (frame.client_id) {
    const index = state.messages.findIndex(
      (m) => m.clientId === frame.client_id && m.status === "sending",
    );
    if (index >= 0) {
      const message = state.messages[index]!;
      return {
        ...state,
        messages: replaceAt(state.messages, index, {
          ...message,
          status: "unsent",
          sendError: { code: frame.code, detail: frame.detail },
        }),
      };
    }
  }
  return addNotice(state, frame.code, frame.detail);
}

/** Which copy of a message is further along: a final status beats streaming, more text beats less. */
function moreAdvanced(local: ChatMessage, stored: ChatMessage): ChatMessage {
  if (isFinal(stored.status) && !isFinal(local.status)) return stored;
  if (isFinal(local.status) && !isFinal(stored.status)) return local;
  if (!isFinal(local.status) && local.content.length >= stored.content.length) return local;
  return isFinal(local.status) ? local : stored;
}

function applyHistory(state: ChatState, wire: WireMessage[], sinceOffset: number): ChatState {
  const byId = new Map(state.messages.filter((m) => m.id !== null).map((m) => [m.id!, m]));
  const seen = new Set<string>();
  const messages: ChatMessage[] = [];
  for (const item of wire) {
    const stored = fromWire(item);
    const local = byId.get(item.id);
    seen.add(item.id);
    messages.push(local ? { ...moreAdvanced(local, stored), key: local.key } : stored);
  }
  // Keep what history cannot know yet: unconfirmed sends and events newer than the request.
  for (const message of state.messages) {
    if (message.id !== null && seen.has(message.id)) continue;
    const pendingLocal = message.id === null;
    if (pendingLocal || message.lastOffset > sinceOffset) messages.push(message);
  }
  return { ...state, messages, history: "loaded" };
}

/**
 * The socket dropped: a message still "sending" may or may not have reached the
 * server. Say so; if it did, the resumed log confirms it by its `client_id`.
 */
function unconfirmedAsUnsent(state: ChatState): ChatState {
  if (!state.messages.some((m) => m.status === "sending")) return state;
  return {
    ...state,
    messages: state.messages.map((m) =>
      m.status === "sending"
        ? {
            ...m,
            status: "unsent",
            sendError: {
              code: "disconnected",
              detail: "The connection dropped before the server confirmed this message.",
            },
          }
        : m,
    ),
  };
}

/** The session is gone: its messages (a streaming answer included) and its unsent ones with it. */
function applyDeleted(state: ChatState, sessionId: string): ChatState {
  if (state.sessionId !== null && state.sessionId !== sessionId) return state;
  return { ...state, messages: [], deleted: true, connection: { status: "closed", reason: "deleted" } };
}

function applyFrame(state: ChatState, frame: ServerFrame): ChatState {
  switch (frame.type) {
    case "welcome": {
      const fresh = state.epoch === null;
      return {
        ...state,
        sessionId: frame.session_id,
        userId: frame.user_id,
        node: frame.node,
        // A fresh tab asks for the whole retained log (resume from 0) besides the
        // REST history, so an answer that is still streaming is rebuilt from its
        // first chunk; a reconnecting tab keeps its position and resumes from it.
        epoch: fresh ? frame.epoch : state.epoch,
        offset: fresh ? 0 : state.offset,
      };
    }
    case "message": {
      const next = advance(state, frame);
      return next ? applyMessage(next, frame) : state;
    }
    case "chunk": {
      const next = advance(state, frame);
      return next ? applyChunk(next, frame) : state;
    }
    case "complete": {
      const next = advance(state, frame);
      return next ? applyComplete(next, frame) : state;
    }
    case "snapshot":
      return applySnapshot(state, frame);
    case "error":
      return applyError(state, frame);
    case "reset":
      // Our position is gone: take the server's, and let history (reloaded by the
      // connection) replace what we hold.
      return { ...state, epoch: frame.epoch, offset: frame.offset, history: "loading" };
    case "deleted":
      return applyDeleted(state, frame.session_id);
    case "pong":
    case "reconnect":
      return state;
    default:
      return state;
  }
}

export function chatReducer(state: ChatState, action: ChatAction): ChatState {
  switch (action.type) {
    case "frame":
      return applyFrame(state, action.frame);
    case "send":
      return {
        ...state,
        messages: [
          ...state.messages,
          {
            key: `local:${action.clientId}`,
            id: null,
            clientId: action.clientId,
            role: "user",
            content: action.content,
            status: "sending",
            createdAt: action.createdAt,
            error: null,
            sendError: null,
            seq: null,
            lastOffset: -1,
          },
        ],
      };
    case "send_failed":
      return applyError(state, {
        type: "error",
        code: action.code,
        detail: action.detail,
        client_id: action.clientId,
      });
    case "history_loading":
      return { ...state, history: "loading" };
    case "history_loaded":
      return applyHistory(state, action.messages, action.sinceOffset);
    case "history_failed":
      return addNotice({ ...state, history: "failed" }, "history", action.detail);
    case "connecting":
      return { ...state, connection: { status: "connecting", attempt: action.attempt } };
    case "opened":
      return { ...state, connection: { status: "connected" } };
    case "reconnect_scheduled":
      return {
        ...unconfirmedAsUnsent(state),
        connection: {
          status: "reconnecting",
          attempt: action.attempt,
          retryAt: action.retryAt,
          lastCloseCode: action.closeCode,
        },
      };
    case "offline":
      return { ...unconfirmedAsUnsent(state), connection: { status: "offline", reason: action.reason } };
    case "closed":
      return { ...unconfirmedAsUnsent(state), connection: { status: "closed", reason: action.reason } };
    case "dismiss_notice":
      return { ...state, notices: state.notices.filter((n) => n.id !== action.id) };
    case "notice":
      return addNotice(state, action.code, action.detail);
    default:
      return state;
  }
}
