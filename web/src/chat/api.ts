// REST calls of the gateway (dev auth: the user is named by `?user_id=`).

import type { WireMessage } from "./protocol";
import type { TicketBody } from "./wire";

export interface SessionSummary {
  id: string;
  title: string | null;
  updated_at: string | null;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    detail: string,
  ) {
    super(detail);
    this.name = "ApiError";
  }
}

async function getJson(path: string, signal?: AbortSignal): Promise<unknown> {
  const response = await fetch(path, { headers: { Accept: "application/json" }, signal });
  return readJson(response);
}

async function readJson(response: Response): Promise<unknown> {
  if (!response.ok) {
    let code = "http_error";
    let detail = `${response.status} ${response.statusText}`;
    try {
      const body = (await response.json()) as { code?: string; detail?: unknown };
      if (typeof body.code === "string") code = body.code;
      if (typeof body.detail === "string") detail = body.detail;
    } catch {
      // not JSON: keep the status line
    }
    throw new ApiError(response.status, code, detail);
  }
  return response.status === 204 ? null : response.json();
}

function userQuery(userId: string): string {
  return `user_id=${encodeURIComponent(userId)}`;
}

export interface SessionPage {
  sessions: SessionSummary[];
  /** The cursor of the next page; null on the last. */
  next: string | null;
}

/** A page of the user's sessions, newest first (`GET /api/sessions`). */
export async function fetchSessionPage(
  userId: string,
  cursor: string | null = null,
  signal?: AbortSignal,
): Promise<SessionPage> {
  const after = cursor === null ? "" : `&cursor=${encodeURIComponent(cursor)}`;
  const body = (await getJson(`/api/sessions?${userQuery(userId)}${after}`, signal)) as Partial<SessionPage>;
  return { sessions: Array.isArray(body.sessions) ? body.sessions : [], next: body.next ?? null };
}

/** The user's first page of sessions, newest first. */
export async function fetchSessions(userId: string, signal?: AbortSignal): Promise<SessionSummary[]> {
  return (await fetchSessionPage(userId, null, signal)).sessions;
}

export interface SearchResult extends SessionSummary {
  snippet: string;
}

/** The user's sessions whose title or text contains `query` (`GET /api/search`). */
export async function searchSessions(userId: string, query: string, signal?: AbortSignal): Promise<SearchResult[]> {
  const body = (await getJson(`/api/search?${userQuery(userId)}&q=${encodeURIComponent(query)}`, signal)) as {
    results?: SearchResult[];
  };
  return Array.isArray(body.results) ? body.results : [];
}

async function sendJson(method: string, path: string, body?: unknown): Promise<unknown> {
  const response = await fetch(path, {
    method,
    headers: { Accept: "application/json", ...(body === undefined ? {} : { "Content-Type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return readJson(response);
}

/** Give a session a title (`PATCH /api/sessions/{id}`). */
export async function renameSession(userId: string, sessionId: string, title: string): Promise<SessionSummary> {
  const path = `/api/sessions/${encodeURIComponent(sessionId)}?${userQuery(userId)}`;
  return (await sendJson("PATCH", path, { title })) as SessionSummary;
}

/** Delete a session, its messages and its log (`DELETE /api/sessions/{id}`). */
export async function deleteSession(userId: string, sessionId: string): Promise<void> {
  await sendJson("DELETE", `/api/sessions/${encodeURIComponent(sessionId)}?${userQuery(userId)}`);
}

/** A session's stored messages, oldest first (`GET /api/history/{id}`). */
export async function fetchHistory(
  sessionId: string,
  userId: string,
  signal?: AbortSignal,
): Promise<WireMessage[]> {
  const body = (await getJson(
    `/api/history/${encodeURIComponent(sessionId)}?user_id=${encodeURIComponent(userId)}`,
    signal,
  )) as { messages?: WireMessage[] };
  return Array.isArray(body.messages) ? body.messages : [];
}

/**
 * A one-time socket ticket for the caller (`POST /api/ws-ticket`): the accounts
 * cookie (or dev mode's `user_id`) authenticates the call; the ticket opens one socket.
 */
export async function fetchTicket(userId: string, signal?: AbortSignal): Promise<TicketBody> {
  const response = await fetch(`/api/ws-ticket?user_id=${encodeURIComponent(userId)}`, {
    method: "POST",
    headers: { Accept: "application/json" },
    signal,
  });
  if (!response.ok) throw new ApiError(response.status, "not_authenticated", "no socket ticket");
  return (await response.json()) as TicketBody;
}

/** Ask an edited version of a question (`POST /api/edit`): the conversation forks there. */
export async function editQuestion(userId: string, sessionId: string, messageId: string, content: string): Promise<void> {
  await sendJson("POST", `/api/edit?${userQuery(userId)}`, { session_id: sessionId, message_id: messageId, content });
}

/** Answer the session's last message again (`POST /api/regenerate`); the old answer stays. */
export async function regenerateAnswer(userId: string, sessionId: string, messageId: string): Promise<void> {
  await sendJson("POST", `/api/regenerate?${userQuery(userId)}`, { session_id: sessionId, message_id: messageId });
}
