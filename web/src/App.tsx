import { useCallback, useEffect, useRef, useState } from "react";
import { editQuestion, fetchTicket, regenerateAnswer } from "./chat/api";
import { currentUserId, sessionFromUrl, urlForSession } from "./chat/identity";
import { isGenerating, streamingMessage } from "./chat/reducer";
import { useChatSocket } from "./chat/useChatSocket";
import { useSessionList } from "./chat/useSessionList";
import { useShortcuts } from "./chat/useShortcuts";
import { Composer } from "./components/Composer";
import { ConnectionBadge } from "./components/ConnectionBadge";
import { ConversationList } from "./components/ConversationList";
import { MessageList } from "./components/MessageList";
import { Notices } from "./components/Notices";

/** The signed-in account (accounts mode); without one the user is dev mode's stored id. */
export interface Account {
  userId: string;
  onSignOut: () => void;
}

export function App({ account }: { account?: Account } = {}) {
  const [userId] = useState(() => account?.userId ?? currentUserId());
  const [sessionId, setSessionId] = useState<string | null>(() => sessionFromUrl());
  const [conversation, setConversation] = useState(0);
  const [sidebarOpen, setSidebarOpen] = useState(false);
  const list = useSessionList(userId);
  const { sessions, refreshSoon: refreshSessionsSoon } = list;

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

  const leaveDeleted = useRef<(id: string) => void>(() => undefined);
  const chat = useChatSocket({
    sessionId,
    userId,
    conversation,
    onSessionCreated,
    onActivity: refreshSessionsSoon,
    onDeleted: (id) => leaveDeleted.current(id),
    ticket: fetchTicket,
  });
  const { state } = chat;

  const servedId = state.sessionId;
  const openSession = useCallback(
    (id: string) => {
      setSidebarOpen(false);
      if (id === servedId) return;
      window.history.pushState(null, "", urlForSession(id));
      setSessionId(id);
      setConversation((n) => n + 1);
      setSidebarOpen(false);
    },
    [servedId],
  );

  const newChat = useCallback(() => {
    window.history.pushState(null, "", urlForSession(null));
    setSessionId(null);
    setConversation((n) => n + 1);
    setSidebarOpen(false);
  }, []);
  // The socket tells every tab of a deleted session (this one included): start afresh.
  leaveDeleted.current = (id) => {
    list.refreshSoon();
    if (id === sessionId) newChat();
  };
  const deleteSession = useCallback(
    async (id: string) => {
      await list.remove(id);
      if (id === servedId) newChat();
    },
    [list.remove, servedId, newChat],
  );

  useShortcuts({
    newChat,
    stop: () => {
      const running = streamingMessage(state);
      if (running?.id) chat.cancel(running.id);
    },
  });

  const streaming = streamingMessage(state);
  const [regenerateError, setRegenerateError] = useState<string | null>(null);
  const currentSession = state.sessionId;
  const regenerate = useCallback(
    (messageId: string) => {
      if (currentSession === null) return;
      setRegenerateError(null);
      regenerateAnswer(userId, currentSession, messageId).catch((failure: unknown) =>
        setRegenerateError(failure instanceof Error ? failure.message : String(failure)),
      );
    },
    [userId, currentSession],
  );
  const edit = useCallback(
    (messageId: string, content: string) => {
      if (currentSession === null) return;
      setRegenerateError(null);
      editQuestion(userId, currentSession, messageId, content).catch((failure: unknown) =>
        setRegenerateError(failure instanceof Error ? failure.message : String(failure)),
      );
    },
    [userId, currentSession],
  );
  const title = sessions.find((s) => s.id === state.sessionId)?.title;

  useEffect(() => {
    document.title = title ? `${title} · chatrelay` : "chatrelay";
  }, [title]);

  return (
    <div className={sidebarOpen ? "app sidebar-open" : "app"}>
      <a className="skip-link" href="#composer-input">
        Skip to message input
      </a>
      <aside className="sidebar" id="sidebar" aria-label="Conversations">
        <div className="brand">chatrelay</div>
        <button type="button" className="new-chat" onClick={newChat} title="New chat (Ctrl+Shift+O)">
          + New chat
        </button>
        <ConversationList
          userId={userId}
          sessions={sessions}
          hasMore={list.hasMore}
          currentId={state.sessionId}
          error={list.error}
          onOpen={openSession}
          onRename={list.rename}
          onDelete={deleteSession}
          onLoadMore={list.loadMore}
        />
        <p className="shortcuts-help">
          <kbd>Ctrl</kbd>+<kbd>Shift</kbd>+<kbd>O</kbd> new chat · <kbd>/</kbd> message · <kbd>Ctrl</kbd>+<kbd>K</kbd>{" "}
          search · <kbd>Esc</kbd> stop
        </p>
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
          <button
            type="button"
            className="sidebar-toggle"
            aria-controls="sidebar"
            aria-expanded={sidebarOpen}
            onClick={() => setSidebarOpen((open) => !open)}
          >
            <span aria-hidden="true">☰</span>
            <span className="visually-hidden">Conversations</span>
          </button>
          <h1 className="chat-title">{title || (state.sessionId ? "Conversation" : "New chat")}</h1>
          <ConnectionBadge connection={state.connection} node={state.node} onRetry={chat.retryNow} />
        </header>
        <MessageList
          messages={state.messages}
          history={state.history}
          sessionId={state.sessionId}
          onRegenerate={isGenerating(state) || state.connection.status !== "connected" ? undefined : regenerate}
          onEdit={isGenerating(state) || state.connection.status !== "connected" ? undefined : edit}
        />
        <div className="composer-area">
          <Notices notices={state.notices} onDismiss={chat.dismissNotice} />
          {regenerateError && (
            <p className="notice" role="alert">
              Could not send: {regenerateError}
            </p>
          )}
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
