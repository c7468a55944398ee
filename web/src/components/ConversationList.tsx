import type { MouseEvent } from "react";
import type { SessionSummary } from "../chat/api";
import { urlForSession } from "../chat/identity";

interface Props {
  sessions: SessionSummary[];
  currentId: string | null;
  error: string | null;
  onOpen(id: string): void;
}

function relativeTime(iso: string | null): string {
  if (!iso) return "";
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return "";
  const seconds = Math.max(0, Math.round((Date.now() - then) / 1000));
  if (seconds < 60) return "just now";
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ago`;
  return new Date(then).toLocaleDateString();
}

/** The user's conversations, newest first (the server's order), as real links. */
export function ConversationList({ sessions, currentId, error, onOpen }: Props) {
  const open = (event: MouseEvent<HTMLAnchorElement>, id: string) => {
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    onOpen(id);
  };
  return (
    <nav className="conversations" aria-label="Conversation list">
      {error && <p className="conversations-error">Could not load conversations: {error}</p>}
      {sessions.length === 0 && !error && <p className="conversations-empty">No conversations yet.</p>}
      <ul>
        {sessions.map((session) => (
          <li key={session.id}>
            <a
              href={urlForSession(session.id)}
              className="conversation"
              aria-current={session.id === currentId ? "page" : undefined}
              data-session-id={session.id}
              onClick={(event) => open(event, session.id)}
            >
              <span className="conversation-title">{session.title || "New chat"}</span>
              <span className="conversation-time">{relativeTime(session.updated_at)}</span>
            </a>
          </li>
        ))}
      </ul>
    </nav>
  );
}
