// Regenerated answers: the answers to one user message (same `replyTo`) are
// alternatives of each other. The conversation shows one of them, where the
// first stood, with a pager ("2 / 2"); the newest unless the reader chose.

import type { ChatMessage } from "./reducer";

export interface Shown {
  message: ChatMessage;
  /** Set when the message has alternatives: which one is shown, of how many. */
  alternative: { replyTo: string; index: number; count: number } | null;
}

/**
 * The messages to show, in order. `chosen` maps a user message id to the index
 * of the answer the reader paged to (missing or out of range: the newest).
 */
export function withAlternatives(messages: readonly ChatMessage[], chosen: Readonly<Record<string, number>>): Shown[] {
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
    shown.push({ message: group[index]!, alternative: { replyTo, index, count: group.length } });
  }
  return shown;
}
