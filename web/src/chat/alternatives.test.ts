import { describe, expect, it } from "vitest";
import { withAlternatives } from "./alternatives";
import type { ChatMessage } from "./reducer";

function message(id: string, role: "user" | "assistant", replyTo?: string): ChatMessage {
  return {
    key: id,
    id,
    clientId: null,
    role,
    content: id,
    status: role === "user" ? "complete" : "completed",
    createdAt: "2026-01-01T00:00:00Z",
    error: null,
    sendError: null,
    seq: null,
    lastOffset: -1,
    ...(replyTo ? { replyTo } : {}),
  };
}

const CONVERSATION = [
  message("q1", "user"),
  message("a1", "assistant", "q1"),
  message("q2", "user"),
  message("a2", "assistant", "q2"),
  message("a2b", "assistant", "q2"),
  message("a2c", "assistant", "q2"),
];

describe("alternatives", () => {
  it("shows the newest answer of a regenerated turn, with its position", () => {
    const shown = withAlternatives(CONVERSATION, {});
    expect(shown.map((s) => s.message.id)).toEqual(["q1", "a1", "q2", "a2c"]);
    expect(shown[1]?.alternative).toBeNull();
    expect(shown[3]?.alternative).toEqual({ replyTo: "q2", index: 2, count: 3 });
  });

  it("shows the answer the reader paged to, in the same place", () => {
    const shown = withAlternatives(CONVERSATION, { q2: 0 });
    expect(shown.map((s) => s.message.id)).toEqual(["q1", "a1", "q2", "a2"]);
    expect(shown[3]?.alternative?.index).toBe(0);
  });

  it("falls back to the newest when the choice is out of range", () => {
    expect(withAlternatives(CONVERSATION, { q2: 7 })[3]?.message.id).toBe("a2c");
  });

  it("leaves answers without replyTo (older servers) alone", () => {
    const plain = [message("q", "user"), message("a", "assistant"), message("b", "assistant")];
    expect(withAlternatives(plain, {}).map((s) => s.message.id)).toEqual(["q", "a", "b"]);
  });
});
