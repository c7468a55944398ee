// Wire types of chatrelay's WebSocket protocol, version 1 (docs/protocol.md).
// Unknown fields are ignored; unknown frame types are dropped by the reducer.

export type Epoch = string | number;

export type AssistantStatus = "streaming" | "completed" | "cancelled" | "failed" | "interrupted";
export type FinalStatus = Exclude<AssistantStatus, "streaming">;
export type WireStatus = "complete" | AssistantStatus;

/** A stored message as the server sends it (in `message` frames and REST history). */
export interface WireMessage {
  id: string;
  session_id: string;
  role: "user" | "assistant";
  content: string;
  status: WireStatus;
  created_at: string;
  client_id?: string | null;
  error?: string | null;
}

export type ErrorCode =
  | "bad_frame"
  | "unknown_type"
  | "invalid_message"
  | "busy"
  | "not_found"
  | "rate_limited"
  | "unavailable"
  | (string & {});

export interface WelcomeFrame {
  type: "welcome";
  node: string;
  session_id: string;
  user_id: string;
  epoch: Epoch;
  offset: number;
  protocol: number;
}
export interface MessageFrame {
  type: "message";
  offset: number;
  message: WireMessage;
}
export interface ChunkFrame {
  type: "chunk";
  offset: number;
  message_id: string;
  seq: number;
  delta: string;
}
export interface CompleteFrame {
  type: "complete";
  offset: number;
  message_id: string;
  status: FinalStatus;
  content: string;
  error?: string | null;
}
export interface ErrorFrame {
  type: "error";
  code: ErrorCode;
  detail: string;
  client_id?: string | null;
  message_id?: string | null;
}
export interface PongFrame {
  type: "pong";
}
export interface ReconnectFrame {
  type: "reconnect";
  reason?: string;
}
export interface ResetFrame {
  type: "reset";
  epoch: Epoch;
  offset: number;
}

export type ServerFrame =
  | WelcomeFrame
  | MessageFrame
  | ChunkFrame
  | CompleteFrame
  | ErrorFrame
  | PongFrame
  | ReconnectFrame
  | ResetFrame;

export type ClientFrame =
  | { type: "chat"; content: string; client_id: string }
  | { type: "cancel"; message_id: string }
  | { type: "resume"; epoch: Epoch; offset: number }
  | { type: "ping" };

/** Longest `chat` content the server accepts by default. */
export const MAX_MESSAGE_LENGTH = 16_000;

/** Close codes after which reconnecting cannot help. */
export const FATAL_CLOSE_CODES: ReadonlyMap<number, string> = new Map([
  [4401, "Not signed in: the server refused this user."],
  [4403, "This conversation belongs to another user."],
]);

const SERVER_FRAME_TYPES = new Set([
  "welcome",
  "message",
  "chunk",
  "complete",
  "error",
  "pong",
  "reconnect",
  "reset",
]);

/** Parse one WebSocket text message; `null` for anything that is not a known frame. */
export function parseFrame(data: unknown): ServerFrame | null {
  if (typeof data !== "string") return null;
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  const type = (value as { type?: unknown }).type;
  if (typeof type !== "string" || !SERVER_FRAME_TYPES.has(type)) return null;
  return value as ServerFrame;
}
