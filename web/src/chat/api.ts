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
  return response.json();
}

/** The user's sessions, newest first (`GET /api/sessions`). */
export async function fetchSessions(userId: string, signal?: AbortSignal): Promise<SessionSummary[]> {
  const body = await getJson(`/api/sessions?user_id=${encodeURIComponent(userId)}`, signal);
  const list = Array.isArray(body) ? body : (body as { sessions?: unknown }).sessions;
  return Array.isArray(list) ? (list as SessionSummary[]) : [];
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
