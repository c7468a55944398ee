// The conversation is a tree: every message follows its parent (`parentId`).
// Messages with the same parent and role are siblings: versions of an edited
// question, or regenerated answers to one question. The reader sees one branch:
// from the root, at each step one sibling (the one paged to, else the one on the
// way to the newest message) and then its children; a message with siblings
// carries a pager ("1 / 2").

import type { ChatMessage } from "./reducer";

/** The parent key of the conversation's first messages. */
export const ROOT = "";

export interface Shown {
  message: ChatMessage;
  /** Set when the message has siblings: which one is shown, of how many, under which parent. */
  alternative: { parent: string; index: number; count: number } | null;
}

export interface BranchView {
  shown: Shown[];
  /** True when the shown branch does not end at the newest message: a new message goes there, not here. */
  olderBranchShown: boolean;
}

function keyOf(message: ChatMessage): string {
  return message.id ?? message.key;
}

/**
 * Where a message hangs. A server message carries `parentId` (none: it starts the
 * conversation); an answer without one follows its question (`replyTo`); a message
 * not yet confirmed (or a placeholder from a stream) follows the one before it,
 * as the server appends new messages to the newest.
 */
function parentOf(message: ChatMessage, previous: ChatMessage | undefined): string {
  if (message.parentId) return message.parentId;
  if (message.role === "assistant" && message.replyTo) return message.replyTo;
  if (message.role === "user" && message.id !== null) return ROOT;
  return previous ? keyOf(previous) : ROOT;
}

/**
 * The branch to show, in order. `chosen` maps a parent key to the index of the
 * sibling the reader paged to (missing or out of range: the sibling leading to
 * the newest message, so by default the conversation shows where it goes on).
 */
export function branchView(messages: readonly ChatMessage[], chosen: Readonly<Record<string, number>>): BranchView {
  const children = new Map<string, ChatMessage[]>();
  // A parent older than the loaded history (a long conversation's first page) counts as the root.
  const known = new Set(messages.map(keyOf));
  const parents = messages.map((message, index) => {
    const parent = parentOf(message, messages[index - 1]);
    return known.has(parent) ? parent : ROOT;
  });
  messages.forEach((message, index) => {
    const parent = parents[index]!;
    const group = children.get(parent);
    if (group) group.push(message);
    else children.set(parent, [message]);
  });
  // The newest message (by arrival) in each message's subtree; children come after their parents.
  const latest = new Map<string, number>();
  for (let index = messages.length - 1; index >= 0; index--) {
    const key = keyOf(messages[index]!);
    const own = Math.max(latest.get(key) ?? index, index);
    latest.set(key, own);
    const parent = parents[index]!;
    latest.set(parent, Math.max(latest.get(parent) ?? -1, own));
  }

  const shown: Shown[] = [];
  const visited = new Set<string>();
  let parent = ROOT;
  for (;;) {
    const kids = children.get(parent);
    if (!kids || visited.has(parent)) break;
    visited.add(parent);
    // Siblings share the parent and the role; should both roles follow a message, the newest's group goes on.
    const role = kids[kids.length - 1]!.role;
    const siblings = kids.filter((kid) => kid.role === role);
    const wanted = chosen[parent];
    let index: number;
    if (wanted !== undefined && wanted >= 0 && wanted < siblings.length) {
      index = wanted;
    } else {
      index = 0;
      siblings.forEach((sibling, i) => {
        if ((latest.get(keyOf(sibling)) ?? -1) >= (latest.get(keyOf(siblings[index]!)) ?? -1)) index = i;
      });
    }
    const message = siblings[index]!;
    shown.push({
      message,
      alternative: siblings.length > 1 ? { parent, index, count: siblings.length } : null,
    });
    parent = keyOf(message);
  }
  const newest = messages[messages.length - 1];
  const end = shown[shown.length - 1]?.message;
  return { shown, olderBranchShown: newest !== undefined && end !== newest };
}
