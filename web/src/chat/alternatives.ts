// Versions and branches. Every stored message names the one it follows
// (`parentId`); messages with one parent are versions of each other: the
// answers to one question (regenerated: "2 / 2"), or the versions of an edited
// question, each followed by its own branch of the conversation. The
// conversation shows one branch: from the first message, at each step the
// version the reader paged to (unless they chose: the one whose branch holds
// the newest message, where the server puts the next one), then what follows it. Messages whose place is not known yet (a local send, an answer
// seen only from its chunks) come last, in order.

import type { ChatMessage } from "./reducer";

export interface Shown {
  message: ChatMessage;
  /** Set when the message has other versions: which one is shown, of how many. */
  alternative: {
    /** The versions' parent (`""`: the conversation's start): the key of the reader's choice. */
    group: string;
    index: number;
    count: number;
    /** Answers to one question, or versions of an edited question. */
    kind: "answers" | "versions";
  } | null;
}

/** The key of the versions that start a conversation (no parent, or one not loaded). */
export const FIRST = "";

/**
 * The messages to show, in order. `chosen` maps a group (a parent id, or
 * `FIRST`) to the index of the version the reader paged to (missing or out of
 * range: the one leading to the newest message; for a new version or answer, itself).
 */
export function withAlternatives(messages: readonly ChatMessage[], chosen: Readonly<Record<string, number>>): Shown[] {
  const placed = messages.filter((m) => m.id !== null && m.parentId !== undefined);
  if (placed.length === 0) return byReplyTo(messages, chosen);
  const loaded = new Set(placed.map((m) => m.id));
  const children = new Map<string, ChatMessage[]>();
  for (const message of placed) {
    const parent = message.parentId && loaded.has(message.parentId) ? message.parentId : FIRST;
    const group = children.get(parent);
    if (group) group.push(message);
    else children.set(parent, [message]);
  }
  // The newest message (by arrival) in each message's branch: a version edited on an
  // older branch is newer than a later version of an earlier question, and the
  // next message goes after it. Parents arrive before their children.
  const newest = new Map<string, number>();
  for (let at = placed.length - 1; at >= 0; at--) {
    const message = placed[at]!;
    const own = Math.max(newest.get(message.id!) ?? at, at);
    newest.set(message.id!, own);
    if (message.parentId) newest.set(message.parentId, Math.max(newest.get(message.parentId) ?? -1, own));
  }
  const leadingToNewest = (versions: ChatMessage[]): number => {
    let best = versions.length - 1;
    versions.forEach((version, at) => {
      if ((newest.get(version.id!) ?? -1) > (newest.get(versions[best]!.id!) ?? -1)) best = at;
    });
    return best;
  };
  const shown: Shown[] = [];
  const seen = new Set<string>();
  let group = FIRST;
  for (;;) {
    const versions = children.get(group);
    if (!versions || seen.has(group)) break;
    seen.add(group);
    const wanted = chosen[group];
    const index = wanted !== undefined && wanted >= 0 && wanted < versions.length ? wanted : leadingToNewest(versions);
    const message = versions[index]!;
    const kind = message.role === "assistant" ? "answers" : "versions";
    shown.push({ message, alternative: versions.length > 1 ? { group, index, count: versions.length, kind } : null });
    group = message.id!;
  }
  for (const message of messages) {
    if (message.id === null || message.parentId === undefined) shown.push({ message, alternative: null });
  }
  return shown;
}

/** The answers to one user message (same `replyTo`) as alternatives, where the first stood:
 *  for messages that do not say what they follow. */
function byReplyTo(messages: readonly ChatMessage[], chosen: Readonly<Record<string, number>>): Shown[] {
  const groups = new Map<string, ChatMessage[]>();
  for (const message of messages) {
    if (message.role !== "assistant" || !message.replyTo) continue;
    const group = groups.get(message.replyTo);
    if (group) group.push(message);
    else groups.set(message.replyTo, [message]);
  }
  const shown: Shown[] = [];
  const placed = new Set<string>();
  for (const message of messages) {
    const replyTo = message.role === "assistant" ? message.replyTo : undefined;
    const group = replyTo ? groups.get(replyTo) : undefined;
    if (!replyTo || !group || group.length < 2) {
      shown.push({ message, alternative: null });
      continue;
    }
    if (placed.has(replyTo)) continue;
    placed.add(replyTo);
    const wanted = chosen[replyTo];
    const index = wanted !== undefined && wanted >= 0 && wanted < group.length ? wanted : group.length - 1;
    shown.push({ message: group[index]!, alternative: { group: replyTo, index, count: group.length, kind: "answers" } });
  }
  return shown;
}
