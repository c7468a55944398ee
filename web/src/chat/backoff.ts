// Reconnection delays: exponential backoff with "full jitter" (AWS architecture
// blog, "Exponential Backoff And Jitter"): the delay is uniform in
// [0, min(cap, base * 2^attempt)], which spreads a crowd of tabs that lost the
// same gateway instead of sending them back in waves.

/** First ceiling: half a second, so a quick blip is barely noticed. */
export const BACKOFF_BASE_MS = 500;
/** Highest ceiling: 20 s, so a tab never waits long after the server is back. */
export const BACKOFF_CAP_MS = 20_000;
/** Attempts before the tab stops trying on its own and offers a button (about 10 minutes). */
export const MAX_RECONNECT_ATTEMPTS = 40;

/** The ceiling of the delay before reconnect attempt `attempt` (0-based). */
export function backoffCeiling(attempt: number): number {
  const exponent = Math.min(Math.max(attempt, 0), 30);
  return Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** exponent);
}

/** A delay in milliseconds for attempt `attempt`; `random` returns a number in [0, 1). */
export function backoffDelay(attempt: number, random: () => number = Math.random): number {
  return Math.floor(random() * backoffCeiling(attempt));
}
