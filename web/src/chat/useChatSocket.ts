// The one place that talks to the chat WebSocket.
//
// `ChatConnection` owns the socket, its timers (reconnect, ping) and the REST
// history loads of one session, and keeps the tab's state by running every
// event through the pure `chatReducer`. `useChatSocket` hands it to React.
// The connection's state machine is drawn in docs/web.md:
//
//   idle (new chat) --first message--+
//                                    v
//   connecting --welcome--> connected --close--> reconnecting --timer--> connecting
//        |                                            |
//        +--browser offline / budget spent--> offline +--4401/4403--> closed

import { useCallback, useEffect, useState, useSyncExternalStore } from "react";
import { fetchHistory } from "./api";
import type { TicketBody } from "./wire";
import { BACKOFF_BASE_MS, MAX_RECONNECT_ATTEMPTS, backoffDelay } from "./backoff";
import {
  type ClientFrame,
  FATAL_CLOSE_CODES,
  MAX_MESSAGE_LENGTH,
  type ServerFrame,
  type WireMessage,
  parseFrame,
} from "./protocol";
import { type ChatAction, type ChatState, chatReducer, initialChatState, overlaps, skipsAhead } from "./reducer";

/** The seed pinged every 30 s; a ping still unanswered at the next one means a dead socket. */
export const PING_INTERVAL_MS = 30_000;

/** The part of the browser's WebSocket that the connection uses (a test can supply a fake). */
export interface SocketLike {
  readonly readyState: number;
  onopen: ((event: Event) => void) | null;
  onmessage: ((event: MessageEvent) => void) | null;
  onclose: ((event: CloseEvent) => void) | null;
  onerror: ((event: Event) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type SocketFactory = (url: string) => SocketLike;

export interface ChatConnectionOptions {
  /** The session to open; `null` asks the server to create one (named in `welcome`). */
  sessionId: string | null;
  userId: string;
  createSocket?: SocketFactory;
  loadHistory?: (sessionId: string, userId: string, signal: AbortSignal) => Promise<WireMessage[]>;
  /** Builds the socket URL; defaults to `/ws/chat` on this page's origin. */
  socketUrl?: (sessionId: string | null, userId: string) => string;
  /**
   * Fetches a one-time ticket before each connect (`POST /api/ws-ticket`), and again
   * before the credential behind it expires (sent as a `refresh` frame). Without it
   * the socket authenticates by its URL alone (dev mode).
   */
  ticket?: (userId: string) => Promise<TicketBody>;
  random?: () => number;
  now?: () => number;
  newClientId?: () => string;
  /** Called once the server named a session this connection asked it to create. */
  onSessionCreated?: (sessionId: string) => void;
  /** Called on welcome and when a message was stored or finished (the conversation list may have changed). */
  onActivity?: () => void;
  /** The session was deleted (in this tab or another): the page should leave it. */
  onDeleted?: (sessionId: string) => void;
}

const OPEN = 1;
/** A socket's credential is refreshed this long before it expires. */
export const REFRESH_MARGIN_MS = 30_000;

export function defaultSocketUrl(sessionId: string | null, userId: string): string {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  const query = new URLSearchParams();
  if (sessionId) query.set("session_id", sessionId);
  query.set("user_id", userId);
  return `${scheme}://${window.location.host}/ws/chat?${query.toString()}`;
}

function defaultClientId(): string {
  if (typeof crypto !== "undefined" && typeof crypto.randomUUID === "function") {
    return crypto.randomUUID();
  }
  return `c-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}

function browserOffline(): boolean {
  return typeof navigator !== "undefined" && navigator.onLine === false;
}

/** One session's live connection: a small store that React subscribes to. */
export class ChatConnection {
  readonly userId: string;
  private state: ChatState;
  private readonly listeners = new Set<() => void>();
  private readonly options: ChatConnectionOptions;
  private socket: SocketLike | null = null;
  private welcomed = false;
  /** The offset of this connection's last `resume` (null: none asked yet). */
  private resumedFrom: number | null = null;
  private attempt = 0;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private pingTimer: ReturnType<typeof setInterval> | null = null;
  private awaitingPong = false;
  private reconnectSoon = false;
  private connectSeq = 0;
  private expiresAt: number | null = null;
  private refreshTimer: ReturnType<typeof setTimeout> | null = null;
  private started = false;
  private historyAbort: AbortController | null = null;
  /** The first message of a new chat, sent once the server has named the session. */
  private outbox: ClientFrame[] = [];

  constructor(options: ChatConnectionOptions) {
    this.options = options;
    this.userId = options.userId;
    this.state = initialChatState(options.sessionId);
  }

  readonly subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  readonly getState = (): ChatState => this.state;

  /** Open the socket (again, after `stop`); safe to call twice. */
  start(): void {
    if (this.started) return;
    this.started = true;
    window.addEventListener("online", this.handleOnline);
    // A new chat waits for its first message, so opening one creates no empty session.
    if (this.state.sessionId !== null || this.outbox.length > 0) this.connect();
  }

  /** Close the socket and cancel every timer and request; the state stays readable. */
  stop(): void {
    if (!this.started) return;
    this.started = false;
    window.removeEventListener("online", this.handleOnline);
    this.clearRetry();
    this.stopPing();
    this.clearRefresh();
    this.connectSeq += 1; // a ticket still being fetched opens nothing
    this.historyAbort?.abort();
    this.historyAbort = null;
    const socket = this.socket;
    this.socket = null;
    this.welcomed = false;
    if (socket) {
      socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
      socket.close(1000, "tab closed the conversation");
    }
  }

  /**
   * Send a chat message. Returns false (and sends nothing) when the socket is
   * not ready or the text is empty; a too-long text becomes an inline error.
   */
  send(content: string): boolean {
    const text = content.trim();
    if (!text) return false;
    if (text.length > MAX_MESSAGE_LENGTH) {
      this.dispatch({
        type: "notice",
        code: "invalid_message",
        detail: `The message is ${text.length.toLocaleString()} characters long; the limit is ${MAX_MESSAGE_LENGTH.toLocaleString()}.`,
      });
      return false;
    }
    const lazyStart = this.state.connection.status === "idle";
    if (!lazyStart && !this.ready()) return false;
    const clientId = (this.options.newClientId ?? defaultClientId)();
    const frame: ClientFrame = { type: "chat", content: text, client_id: clientId };
    this.dispatch({ type: "send", clientId, content: text, createdAt: new Date(this.now()).toISOString() });
    if (lazyStart) {
      this.outbox.push(frame);
      if (this.started) this.connect();
    } else {
      this.transmit(frame);
    }
    return true;
  }

  /** Ask the server to stop a running answer (its `complete` says `cancelled`). */
  cancel(messageId: string): boolean {
    if (!this.ready()) return false;
    this.transmit({ type: "cancel", message_id: messageId });
    return true;
  }

  /** Skip the rest of a reconnect countdown (or leave `offline`) and connect now. */
  retryNow(): void {
    if (!this.started || this.socket) return;
    this.clearRetry();
    this.attempt = 0;
    this.connect();
  }

  dismissNotice(id: number): void {
    this.dispatch({ type: "dismiss_notice", id });
  }

  private ready(): boolean {
    return this.welcomed && this.socket !== null && this.socket.readyState === OPEN;
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  private dispatch(action: ChatAction): void {
    const next = chatReducer(this.state, action);
    if (next === this.state) return;
    this.state = next;
    for (const listener of this.listeners) listener();
  }

  private transmit(frame: ClientFrame): void {
    this.socket?.send(JSON.stringify(frame));
  }

  private connect(): void {
    if (!this.started) return;
    if (browserOffline()) {
      this.dispatch({ type: "offline", reason: "The browser is offline." });
      return;
    }
    this.dispatch({ type: "connecting", attempt: this.attempt });
    const source = this.options.ticket;
    if (!source) {
      this.open(null);
      return;
    }
    // Tickets are one-time: every connect fetches its own. A late answer for an
    // attempt that was superseded (or a stopped connection) is dropped.
    const seq = ++this.connectSeq;
    source(this.userId).then(
      (ticket) => {
        if (this.started && seq === this.connectSeq) this.open(ticket);
      },
      () => {
        if (this.started && seq === this.connectSeq) this.scheduleReconnect(null);
      },
    );
  }

  private open(ticket: TicketBody | null): void {
    const target = new URL((this.options.socketUrl ?? defaultSocketUrl)(this.state.sessionId, this.userId));
    // v1.1: when this tab falls behind, several chunks of one answer may come as one frame.
    target.searchParams.set("coalesce", "1");
    if (ticket) target.searchParams.set("ticket", ticket.ticket);
    const url = target.toString();
    this.expiresAt = ticket?.expires_at ?? null;
    const create = this.options.createSocket ?? ((u: string) => new WebSocket(u) as SocketLike);
    let socket: SocketLike;
    try {
      socket = create(url);
    } catch {
      this.scheduleReconnect(null);
      return;
    }
    this.socket = socket;
    this.welcomed = false;
    socket.onmessage = (event) => {
      if (this.socket !== socket) return;
      const frame = parseFrame(event.data);
      if (frame) this.handleFrame(frame);
    };
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.handleClose(event.code, event.reason);
    };
    // An error is always followed by a close, which does the work.
    socket.onerror = () => undefined;
  }

  private handleFrame(frame: ServerFrame): void {
    const wasFresh = this.state.epoch === null;
    const position = { epoch: this.state.epoch, offset: this.state.offset };
    if (skipsAhead(this.state, frame) && this.resumedFrom !== position.offset && position.epoch) {
      // Dropped by the reducer; ask for what is missing unless that is asked already.
      this.resumedFrom = position.offset;
      this.transmit({ type: "resume", epoch: position.epoch, offset: position.offset, snapshot: true });
    }
    const askedForNewSession = this.state.sessionId === null;
    if (overlaps(this.state, frame)) {
      // A coalesced chunk over offsets we hold (the server never sends one): its delta
      // cannot be cut. Start again at once; the resume from our offset brings the rest.
      this.reconnectSoon = true;
      this.socket?.close(1000, "coalesced chunk overlaps what we hold");
      return;
    }
    this.dispatch({ type: "frame", frame });
    switch (frame.type) {
      case "welcome":
        this.welcomed = true;
        this.attempt = 0;
        this.dispatch({ type: "opened" });
        this.startPing();
        this.scheduleRefresh();
        this.options.onActivity?.();
        if (askedForNewSession) this.options.onSessionCreated?.(frame.session_id);
        if (wasFresh) {
          // Replay what the log holds (rebuilds a running answer) and load the rest.
          this.resumedFrom = frame.offset > 0 ? 0 : null;
          // `snapshot`: a running answer may come as its text so far, not chunk by chunk.
          if (frame.offset > 0) this.transmit({ type: "resume", epoch: frame.epoch, offset: 0, snapshot: true });
          if (!askedForNewSession) this.loadHistory();
          else this.dispatch({ type: "history_loaded", messages: [], sinceOffset: 0 });
          for (const queued of this.outbox.splice(0)) this.transmit(queued);
        } else if (position.epoch !== null) {
          this.resumedFrom = position.offset;
          this.transmit({ type: "resume", epoch: position.epoch, offset: position.offset, snapshot: true });
        }
        break;
      case "reset":
        this.loadHistory();
        break;
      case "pong":
        this.awaitingPong = false;
        break;
      case "reconnect":
        // The node is draining: leave now, come back (to any node) almost at once.
        this.reconnectSoon = true;
        this.socket?.close(1000, "server asked to reconnect");
        break;
      case "message":
      case "complete":
        this.options.onActivity?.();
        break;
      case "deleted":
        // Nothing more will come: leave for good, and let the page move on.
        this.options.onDeleted?.(frame.session_id);
        break;
      default:
        break;
    }
  }

  /** Send a fresh ticket `REFRESH_MARGIN_MS` before the socket's credential expires. */
  private scheduleRefresh(): void {
    this.clearRefresh();
    const source = this.options.ticket;
    if (!source || this.expiresAt === null) return;
    const now = (this.options.now ?? Date.now)();
    const delay = Math.max(0, this.expiresAt * 1000 - REFRESH_MARGIN_MS - now);
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = null;
      const socket = this.socket;
      source(this.userId).then(
        (ticket) => {
          if (this.socket !== socket || !this.welcomed) return;
          this.expiresAt = ticket.expires_at ?? null;
          this.transmit({ type: "refresh", ticket: ticket.ticket });
          this.scheduleRefresh();
        },
        // No ticket (signed out): the server ends the socket at expiry with 4401.
        () => undefined,
      );
    }, delay);
  }

  private clearRefresh(): void {
    if (this.refreshTimer !== null) clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
  }

  private handleClose(code: number, reason: string): void {
    this.socket = null;
    this.welcomed = false;
    this.stopPing();
    this.clearRefresh();
    if (!this.started) return;
    const fatal = FATAL_CLOSE_CODES.get(code);
    if (fatal) {
      this.dispatch({ type: "closed", reason: reason ? `${fatal} (${reason})` : fatal });
      return;
    }
    this.scheduleReconnect(code);
  }

  private scheduleReconnect(code: number | null): void {
    if (browserOffline()) {
      this.dispatch({ type: "offline", reason: "The browser is offline." });
      return;
    }
    if (this.attempt >= MAX_RECONNECT_ATTEMPTS) {
      this.dispatch({
        type: "offline",
        reason: `Could not reach the server after ${MAX_RECONNECT_ATTEMPTS} attempts.`,
      });
      return;
    }
    const random = this.options.random ?? Math.random;
    const delay = this.reconnectSoon
      ? Math.floor(random() * BACKOFF_BASE_MS)
      : backoffDelay(this.attempt, random);
    this.reconnectSoon = false;
    this.attempt += 1;
    this.dispatch({
      type: "reconnect_scheduled",
      attempt: this.attempt,
      retryAt: this.now() + delay,
      closeCode: code,
    });
    this.clearRetry();
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, delay);
  }

  private loadHistory(): void {
    const sessionId = this.state.sessionId;
    if (!sessionId) return;
    this.historyAbort?.abort();
    const abort = new AbortController();
    this.historyAbort = abort;
    const sinceOffset = this.state.offset;
    this.dispatch({ type: "history_loading" });
    const load = this.options.loadHistory ?? fetchHistory;
    load(sessionId, this.userId, abort.signal).then(
      (messages) => {
        if (abort.signal.aborted || this.historyAbort !== abort) return;
        this.historyAbort = null;
        this.dispatch({ type: "history_loaded", messages, sinceOffset });
      },
      (error: unknown) => {
        if (abort.signal.aborted || this.historyAbort !== abort) return;
        this.historyAbort = null;
        const detail = error instanceof Error ? error.message : String(error);
        this.dispatch({ type: "history_failed", detail });
      },
    );
  }

  private startPing(): void {
    this.stopPing();
    this.awaitingPong = false;
    this.pingTimer = setInterval(() => {
      if (this.awaitingPong) {
        // No pong for a whole interval: the socket is dead without knowing it.
        const socket = this.socket;
        if (socket) {
          socket.close(4000, "no pong");
          this.handleClose(4000, "no pong");
        }
        return;
      }
      this.awaitingPong = true;
      this.transmit({ type: "ping" });
    }, PING_INTERVAL_MS);
  }

  private stopPing(): void {
    if (this.pingTimer !== null) clearInterval(this.pingTimer);
    this.pingTimer = null;
    this.awaitingPong = false;
  }

  private clearRetry(): void {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  private readonly handleOnline = (): void => {
    if (this.state.connection.status === "offline") this.retryNow();
  };
}

export interface ChatSocket {
  state: ChatState;
  send(content: string): boolean;
  cancel(messageId: string): boolean;
  retryNow(): void;
  dismissNotice(id: number): void;
}

/**
 * The chat of one session over a WebSocket. A new connection is opened when
 * the user changes, when `conversation` changes (the caller bumps it for "new
 * chat"), or when `sessionId` names a session other than the one being served;
 * adopting the id the server gave a new session keeps the connection.
 */
export function useChatSocket(options: ChatConnectionOptions & { conversation?: number }): ChatSocket {
  const conversation = options.conversation ?? 0;
  const [held, setHeld] = useState(() => ({ conversation, connection: new ChatConnection(options) }));
  const { connection } = held;
  const served = connection.getState().sessionId;
  const switched = options.sessionId !== null && options.sessionId !== served;
  if (connection.userId !== options.userId || held.conversation !== conversation || switched) {
    // Derived state: a different conversation (or user) needs its own connection.
    setHeld({ conversation, connection: new ChatConnection(options) });
  }
  useEffect(() => {
    connection.start();
    return () => connection.stop();
  }, [connection]);
  const state = useSyncExternalStore(connection.subscribe, connection.getState);
  const send = useCallback((content: string) => connection.send(content), [connection]);
  const cancel = useCallback((id: string) => connection.cancel(id), [connection]);
  const retryNow = useCallback(() => connection.retryNow(), [connection]);
  const dismissNotice = useCallback((id: number) => connection.dismissNotice(id), [connection]);
  return { state, send, cancel, retryNow, dismissNotice };
}
