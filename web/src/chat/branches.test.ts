import { describe, expect, it } from "vitest";
import { branchView } from "./branches";
import type { ChatMessage } from "./reducer";

function message(id: string, role: "user" | "assistant", parentId?: string, replyTo?: string): ChatMessage {
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
    ...(parentId ? { parentId } : {}),
    ...(replyTo ? { replyTo } : {}),
  };
}

function ids(messages: ChatMessage[], chosen: Record<string, number> = {}): string[] {
  return branchView(messages, chosen).shown.map((s) => s.message.id ?? s.message.key);
}

const REGENERATED = [
  message("q1", "user"),
  message("a1", "assistant", "q1", "q1"),
  message("q2", "user", "a1"),
  message("a2", "assistant", "q2", "q2"),
  message("a2b", "assistant", "q2", "q2"),
  message("a2c", "assistant", "q2", "q2"),
];

// q1 was edited into q1b (a sibling: same parent, the root) and answered; the old branch stays.
const EDITED = [
  message("q1", "user"),
  message("a1", "assistant", "q1", "q1"),
  message("q2", "user", "a1"),
  message("a2", "assistant", "q2", "q2"),
  message("q1b", "user"),
  message("a1b", "assistant", "q1b", "q1b"),
];

describe("branches: regenerated answers", () => {
  it("shows the newest answer of a regenerated turn, with its position", () => {
    const { shown, olderBranchShown } = branchView(REGENERATED, {});
    expect(shown.map((s) => s.message.id)).toEqual(["q1", "a1", "q2", "a2c"]);
    expect(shown[1]?.alternative).toBeNull();
    expect(shown[3]?.alternative).toEqual({ parent: "q2", index: 2, count: 3 });
    expect(olderBranchShown).toBe(false);
  });

  it("shows the answer the reader paged to, in the same place", () => {
    const { shown } = branchView(REGENERATED, { q2: 0 });
    expect(shown.map((s) => s.message.id)).toEqual(["q1", "a1", "q2", "a2"]);
    expect(shown[3]?.alternative?.index).toBe(0);
  });

  it("falls back to the newest when the choice is out of range", () => {
    expect(ids(REGENERATED, { q2: 7 })).toEqual(["q1", "a1", "q2", "a2c"]);
  });

  it("follows replyTo, then arrival order, for messages without a parent (older servers, stream placeholders)", () => {
    const plain = [message("q", "user"), message("a", "assistant", undefined, "q"), message("b", "assistant")];
    expect(ids(plain)).toEqual(["q", "a", "b"]);
  });
});

describe("branches: edited questions", () => {
  it("shows the newest version of an edited question and its answer, not the old branch", () => {
    const { shown, olderBranchShown } = branchView(EDITED, {});
    expect(shown.map((s) => s.message.id)).toEqual(["q1b", "a1b"]);
    expect(shown[0]?.alternative).toEqual({ parent: "", index: 1, count: 2 });
    expect(shown[1]?.alternative).toBeNull();
    expect(olderBranchShown).toBe(false);
  });

  it("pages back to the old version and shows its whole branch", () => {
    const { shown, olderBranchShown } = branchView(EDITED, { "": 0 });
    expect(shown.map((s) => s.message.id)).toEqual(["q1", "a1", "q2", "a2"]);
    expect(shown[0]?.alternative).toEqual({ parent: "", index: 0, count: 2 });
    expect(olderBranchShown).toBe(true);
  });

  it("versions a later question: the branch forks under the same answer", () => {
    const forked = [...EDITED.slice(0, 4), message("q2b", "user", "a1"), message("a2b", "assistant", "q2b", "q2b")];
    const { shown } = branchView(forked, {});
    expect(shown.map((s) => s.message.id)).toEqual(["q1", "a1", "q2b", "a2b"]);
    expect(shown[2]?.alternative).toEqual({ parent: "a1", index: 1, count: 2 });
    expect(ids(forked, { a1: 0 })).toEqual(["q1", "a1", "q2", "a2"]);
  });

  it("a fork made while another branch is shown leads the default view to it", () => {
    // The reader paged back to q1's first version and edited q2 there: q2b is the newest message.
    const forked = [...EDITED, message("q2b", "user", "a1"), message("a2b", "assistant", "q2b", "q2b")];
    expect(ids(forked, { "": 0 })).toEqual(["q1", "a1", "q2b", "a2b"]);
    // With no choice, the view follows the newest message, down the older version of q1.
    const { shown, olderBranchShown } = branchView(forked, {});
    expect(shown.map((s) => s.message.id)).toEqual(["q1", "a1", "q2b", "a2b"]);
    expect(shown[0]?.alternative).toEqual({ parent: "", index: 0, count: 2 });
    expect(olderBranchShown).toBe(false);
  });

  it("a message not confirmed yet follows the newest message, as the server will put it", () => {
    const pending: ChatMessage = {
      ...message("local:c1", "user"),
      id: null,
      status: "sending",
    };
    expect(ids([...EDITED, pending])).toEqual(["q1b", "a1b", "local:c1"]);
  });

  it("starts at the oldest loaded message when the history holds only the newest part", () => {
    const tail = [
      message("q7", "user", "a6"),
      message("a7", "assistant", "q7", "q7"),
      message("q7b", "user", "a6"),
      message("a7b", "assistant", "q7b", "q7b"),
    ];
    const { shown } = branchView(tail, {});
    expect(shown.map((s) => s.message.id)).toEqual(["q7b", "a7b"]);
    expect(shown[0]?.alternative).toEqual({ parent: "", index: 1, count: 2 });
  });
});
