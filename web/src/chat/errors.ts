// Server error codes in words a person can act on.

import type { ErrorCode } from "./protocol";

export function describeError(code: ErrorCode, detail: string): string {
  switch (code) {
    case "busy":
      return "An answer is still being written in this conversation. Wait for it to finish, or press Stop.";
    case "rate_limited":
      return `You are sending messages too quickly. ${detail}`.trim();
    case "invalid_message":
      return `This message can't be sent: ${detail}`;
    case "quota_exceeded":
      return `You have reached your limit: ${detail}`;
    case "token_expired":
      return "Your sign-in expired. Sign in again to carry on.";
    case "forbidden":
      return "This conversation belongs to another user: you cannot write in it.";
    case "unavailable":
      return "No model worker is available right now. Please try again in a moment.";
    case "not_found":
      return "That answer had already finished, so there was nothing to stop.";
    case "disconnected":
      return detail;
    case "history":
      return `The conversation's history could not be loaded: ${detail}`;
    case "bad_frame":
    case "unknown_type":
      return `The server did not understand a request from this page (${detail}).`;
    default:
      return detail || `The server reported an error (${code}).`;
  }
}

/** What a final assistant status means, for its badge. */
export const STATUS_LABELS: Record<string, { label: string; title: string }> = {
  cancelled: { label: "cancelled", title: "Stopped before the answer was finished; the part written so far is kept." },
  failed: { label: "failed", title: "The model failed while answering." },
  interrupted: {
    label: "interrupted",
    title: "The server stopped while writing this answer; the part written so far is kept.",
  },
};
