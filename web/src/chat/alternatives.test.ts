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

describe("alternatives (messages that do not say what they follow)", () => {
  it("shows the newest answer of a regenerated turn, with its position", () => {
    const shown = withAlternatives(CONVERSATION, {});
    expect(shown.map((s) => s.message.id)).toEqual(["q1", "a1", "q2", "a2c"]);
    expect(shown[1]?.alternative).toBeNull();
    expect(shown[3]?.alternative).toEqual({ group: "q2", index: 2, count: 3, kind: "answers" });
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

/** A stored message with the one it follows. */
function placed(id: string, role: "user" | "assistant", parentId: string | null): ChatMessage {
  return { ...message(id, role, role === "assistant" && parentId ? parentId : undefined), parentId };
}

// q1 -> a1 -> q2 -> a2, then q2 edited (q2b, a version of q2) -> a2b -> q3 -> a3,
// and the first question edited too (q1b) -> a1b.
const FORKED = [
  placed("q1", "user", null),
  placed("a1", "assistant", "q1"),
  placed("q2", "user", "a1"),
  placed("a2", "assistant", "q2"),
  placed("q2b", "user", "a1"),
  placed("a2b", "assistant", "q2b"),
  placed("q3", "user", "a2b"),
  placed("a3", "assistant", "q3"),
  placed("q1b", "user", null),
  placed("a1b", "assistant", "q1b"),
];

describe("branches", () => {
  it("shows the newest branch, with the position of each edited question", () => {
    const shown = withAlternatives(FORKED, {});
    expect(shown.map((s) => s.message.id)).toEqual(["q1b", "a1b"]);
    expect(shown[0]?.alternative).toEqual({ group: "", index: 1, count: 2, kind: "versions" });
  });

  it("paging to an older version shows the branch that follows it", () => {
    const first = withAlternatives(FORKED, { "": 0 });
    expect(first.map((s) => s.message.id)).toEqual(["q1", "a1", "q2b", "a2b", "q3", "a3"]);
    expect(first[2]?.alternative).toEqual({ group: "a1", index: 1, count: 2, kind: "versions" });
    const older = withAlternatives(FORKED, { "": 0, a1: 0 });
    expect(older.map((s) => s.message.id)).toEqual(["q1", "a1", "q2", "a2"]);
  });

  it("pages regenerated answers inside a branch as before", () => {
    const regenerated = [...FORKED, placed("a1c", "assistant", "q1b")];
    const shown = withAlternatives(regenerated, {});
    expect(shown.map((s) => s.message.id)).toEqual(["q1b", "a1c"]);
    expect(shown[1]?.alternative).toEqual({ group: "q1b", index: 1, count: 2, kind: "answers" });
  });

  it("puts what has no place yet last: a question being sent, an answer seen from its chunks", () => {
    const sending = { ...message("local", "user"), id: null, key: "local:c1", status: "sending" as const };
    const chunked = message("a9", "assistant");
    const shown = withAlternatives([...FORKED, sending, chunked], {});
    expect(shown.map((s) => s.message.key)).toEqual(["q1b", "a1b", "local:c1", "a9"]);
  });

  it("starts from the oldest loaded messages when the first ones were not loaded", () => {
    const later = FORKED.slice(2, 8); // from q2: its parent a1 was not loaded
    const shown = withAlternatives(later, {});
    expect(shown[0]?.alternative).toEqual({ group: "", index: 1, count: 2, kind: "versions" });
    expect(shown.map((s) => s.message.id)).toEqual(["q2b", "a2b", "q3", "a3"]);
  });

  it("a version edited on an older branch shows by default: the next message goes after it", () => {
    // The reader paged to q1, edited q2 there (q2c) and it was answered: that is the newest
    // message, and a new chat continues it; the view must not jump to q1b's branch.
    const editedOnOlder = [...FORKED, placed("q2c", "user", "a1"), placed("a2c", "assistant", "q2c")];
    const shown = withAlternatives(editedOnOlder, {});
    expect(shown.map((s) => s.message.id)).toEqual(["q1", "a1", "q2c", "a2c"]);
    expect(shown[0]?.alternative).toEqual({ group: "", index: 0, count: 2, kind: "versions" });
    expect(shown[2]?.alternative).toEqual({ group: "a1", index: 2, count: 3, kind: "versions" });
    // The newest version of the first question is one page away, as ever.
    expect(withAlternatives(editedOnOlder, { "": 1 }).map((s) => s.message.id)).toEqual(["q1b", "a1b"]);
    // A chat sent then lands on the branch shown.
    const next = [...editedOnOlder, placed("q4", "user", "a2c"), placed("a4", "assistant", "q4")];
    expect(withAlternatives(next, {}).map((s) => s.message.id)).toEqual(["q1", "a1", "q2c", "a2c", "q4", "a4"]);
  });
});
