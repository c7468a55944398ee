import { useCallback, useEffect, useRef, useState } from "react";
import { type SessionSummary, fetchSessions, fetchTicket } from "./chat/api";
import { currentUserId, sessionFromUrl, urlForSession } from "./chat/identity";
import { isGenerating, streamingMessage } from "./chat/reducer";
import { useChatSocket } from "./chat/useChatSocket";
import { Composer } from "./components/Composer";
import { ConnectionBadge } from "./components/ConnectionBadge";
import { ConversationList } from "./components/ConversationList";
import { MessageList } from "./components/MessageList";
import { Notices } from "./components/Notices";

/** Coalesces bursts of activity (a message and its answer) into one list refresh. */
const SESSIONS_REFRESH_DELAY_MS = 400;

/** The signed-in account (accounts mode); without one the user is dev mode's stored id. */
export interface Account {
  userId: string;
  onSignOut: () => void;
}

export function App({ account }: { account?: Account } = {}) {
  const [userId] = useState(() => account?.userId ?? currentUserId());
  const [sessionId, setSessionId] = useState<string | null>(() => sessionFromUrl());
  const [conversation, setConversation] = useState(0);
  const [sessions, setSessions] = useState<SessionSummary[]>([]);
  const [sessionsError, setSessionsError] = useState<string | null>(null);
  const refreshTimer = useRef<ReturnType<typeof setTimeout> | null>(null);

  const loadSessions = useCallback(() => {
    fetchSessions(userId).then(
      (list) => {
        setSessions(list);
        setSessionsError(null);
      },
      (error: unknown) => setSessionsError(error instanceof Error ? error.message : String(error)),
    );
  }, [userId]);

  const refreshSessionsSoon = useCallback(() => {
    if (refreshTimer.current !== null) clearTimeout(refreshTimer.current);
    refreshTimer.current = setTimeout(() => {
      refreshTimer.current = null;
      loadSessions();
    }, SESSIONS_REFRESH_DELAY_MS);
  }, [loadSessions]);

  useEffect(() => {
    loadSessions();
    return () => {
      if (refreshTimer.current !== null) clearTimeout(refreshTimer.current);
    };
  }, [loadSessions]);

  const onSessionCreated = useCallback(
    (id: string) => {
      window.history.replaceState(null, "", urlForSession(id));
      setSessionId(id);
      refreshSessionsSoon();
    },
    [refreshSessionsSoon],
  );

  useEffect(() => {
    const onPopState = () => {
      setSessionId(sessionFromUrl());
      setConversation((n) => n + 1);
    };
    window.addEventListener("popstate", onPopState);
    return () => window.removeEventListener("popstate", onPopState);
  }, []);

  const chat = useChatSocket({
    sessionId,
    userId,
    conversation,
    onSessionCreated,
    onActivity: refreshSessionsSoon,
    ticket: fetchTicket,
  });
  const { state } = chat;

  const servedId = state.sessionId;
  const openSession = useCallback(
    (id: string) => {
      if (id === servedId) return;
      window.history.pushState(null, "", urlForSession(id));
      setSessionId(id);
      setConversation((n) => n + 1);
    },
    [servedId],
  );

  const newChat = useCallback(() => {
    window.history.pushState(null, "", urlForSession(null));
    setSessionId(null);
    setConversation((n) => n + 1);
  }, []);

  const streaming = streamingMessage(state);
  const title = sessions.find((s) => s.id === state.sessionId)?.title;

  useEffect(() => {
    document.title = title ? `${title} · chatrelay` : "chatrelay";
  }, [title]);

  return (
    <div className="app">
      <a className="skip-link" href="#composer-input">
        Skip to message input
      </a>
      <aside className="sidebar" aria-label="Conversations">
        <div className="brand">chatrelay</div>
        <button type="button" className="new-chat" onClick={newChat}>
          + New chat
        </button>
        <ConversationList
          sessions={sessions}
          currentId={state.sessionId}
          error={sessionsError}
          onOpen={openSession}
        />
        {account ? (
          <div className="user account">
            <span>
              Signed in as <strong>{account.userId}</strong>
            </span>
            <button type="button" className="sign-out" onClick={account.onSignOut}>
              Sign out
            </button>
          </div>
        ) : (
          <div className="user" title="Dev auth: the user id is kept in localStorage (chatrelay.user_id)">
            user <strong>{userId}</strong>
          </div>
        )}
      </aside>
      <main className="chat">
        <header className="chat-header">
          <h1 className="chat-title">{title || (state.sessionId ? "Conversation" : "New chat")}</h1>
          <ConnectionBadge connection={state.connection} node={state.node} onRetry={chat.retryNow} />
        </header>
        <MessageList messages={state.messages} history={state.history} sessionId={state.sessionId} />
        <div className="composer-area">
          <Notices notices={state.notices} onDismiss={chat.dismissNotice} />
          <Composer
            key={conversation}
            connection={state.connection}
            generating={isGenerating(state)}
            streamingId={streaming?.id ?? null}
            onSend={chat.send}
            onStop={chat.cancel}
          />
        </div>
      </main>
    </div>
  );
}
