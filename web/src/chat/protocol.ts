// Wire types of chatrelay's WebSocket protocol, version 1 (docs/protocol.md).
// Unknown fields are ignored; unknown frame types are dropped by the reducer.

import type { ErrorFrame, ServerFrame, WelcomeFrame, WireMessage } from "./wire";

// The frame and body types are generated from docs/protocol.schema.json (`make schema`).
export type {
  ChunkFrame,
  ClientFrame,
  CompleteFrame,
  DeletedFrame,
  ErrorFrame,
  MessageFrame,
  PongFrame,
  ReconnectFrame,
  ResetFrame,
  ServerFrame,
  SnapshotFrame,
  WelcomeFrame,
  WireMessage,
} from "./wire";

export type Epoch = WelcomeFrame["epoch"];
export type WireStatus = WireMessage["status"];
export type AssistantStatus = Exclude<WireStatus, "complete">;
export type FinalStatus = Exclude<AssistantStatus, "streaming">;

/** The codes docs/protocol.md lists; the server may add others. */
export type ErrorCode =
  | "bad_frame"
  | "unknown_type"
  | "invalid_message"
  | "busy"
  | "not_found"
  | "rate_limited"
  | "unavailable"
  | "quota_exceeded"
  | "token_expired"
  | "forbidden"
  | (ErrorFrame["code"] & {});

/** Longest `chat` content the server accepts by default. */
export const MAX_MESSAGE_LENGTH = 16_000;

/** Close codes after which reconnecting cannot help. */
export const FATAL_CLOSE_CODES: ReadonlyMap<number, string> = new Map([
  [4401, "Not signed in: the server refused this user."],
  [4403, "This conversation belongs to another user."],
]);

// A record, not a list: tsc fails when a generated frame type is missing here.
const SERVER_FRAME_TYPES: Record<ServerFrame["type"], true> = {
  welcome: true,
  message: true,
  chunk: true,
  complete: true,
  error: true,
  pong: true,
  reconnect: true,
  reset: true,
  snapshot: true,
  deleted: true,
};

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
  if (typeof type !== "string" || !Object.hasOwn(SERVER_FRAME_TYPES, type)) return null;
  return value as ServerFrame;
}
