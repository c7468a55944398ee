// The session list's date groups: today, yesterday, the previous 7 days, older
// (by the browser's local calendar, as a user reads "today").

export type DateGroup = "Today" | "Yesterday" | "Previous 7 days" | "Older";

const DAY_MS = 86_400_000;

function startOfDay(time: number): number {
  const day = new Date(time);
  day.setHours(0, 0, 0, 0);
  return day.getTime();
}

/** The group of a session last updated at `iso` (unknown dates count as older). */
export function dateGroup(iso: string | null, now: number = Date.now()): DateGroup {
  const then = iso ? Date.parse(iso) : Number.NaN;
  if (Number.isNaN(then)) return "Older";
  const today = startOfDay(now);
  if (then >= today) return "Today";
  if (then >= today - DAY_MS) return "Yesterday";
  if (then >= today - 7 * DAY_MS) return "Previous 7 days";
  return "Older";
}

/** Items grouped in the order given (newest first), each group once, empty ones left out. */
export function groupByDate<T extends { updated_at: string | null }>(
  items: readonly T[],
  now: number = Date.now(),
): { group: DateGroup; items: T[] }[] {
  const groups: { group: DateGroup; items: T[] }[] = [];
  for (const item of items) {
    const group = dateGroup(item.updated_at, now);
    const last = groups.at(-1);
    if (last?.group === group) last.items.push(item);
    else groups.push({ group, items: [item] });
  }
  return groups;
}
