import { useCallback, useEffect, useLayoutEffect, useRef, useState } from "react";
import { FIRST, withAlternatives } from "../chat/alternatives";
import type { ChatMessage, HistoryState } from "../chat/reducer";
import { MessageView } from "./MessageView";

interface Props {
  messages: ChatMessage[];
  history: HistoryState;
  sessionId: string | null;
  /** Regenerate the last answer (absent: not now, e.g. while one streams). */
  onRegenerate?: (messageId: string) => void;
  /** Ask an edited version of a question (absent: not now, e.g. while one streams). */
  onEdit?: (messageId: string, content: string) => void;
}

/** How close to the bottom (px) still counts as "following" the conversation. */
const FOLLOW_THRESHOLD_PX = 48;

/**
 * The conversation. It follows new text while the reader is at the bottom and
 * stops following as soon as they scroll up; a button brings them back.
 */
export function MessageList({ messages, history, sessionId, onRegenerate, onEdit }: Props) {
  const scroller = useRef<HTMLDivElement>(null);
  // Which version the reader paged to, per group of versions (default: the newest).
  const [chosen, setChosen] = useState<Record<string, number>>({});
  const shown = withAlternatives(messages, chosen);
  const page = useCallback((group: string, index: number) => {
    setChosen((current) => ({ ...current, [group]: index }));
  }, []);
  // A new version shows as soon as it arrives: the reader's choice among its group is dropped.
  const showNewest = useCallback((group: string) => {
    setChosen(({ [group]: _dropped, ...rest }) => rest);
  }, []);
  const regenerate = useCallback(
    (message: ChatMessage) => {
      if (!message.id || !onRegenerate) return;
      const group = message.parentId ?? message.replyTo;
      if (group) showNewest(group);
      onRegenerate(message.id);
    },
    [onRegenerate, showNewest],
  );
  const edit = useCallback(
    (message: ChatMessage, content: string) => {
      if (!message.id || !onEdit) return;
      showNewest(message.parentId ?? FIRST);
      onEdit(message.id, content);
    },
    [onEdit, showNewest],
  );
  const following = useRef(true);
  const [showJump, setShowJump] = useState(false);

  const onScroll = useCallback(() => {
    const el = scroller.current;
    if (!el) return;
    const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight <= FOLLOW_THRESHOLD_PX;
    following.current = atBottom;
    setShowJump(!atBottom);
  }, []);

  const jumpToLatest = useCallback(() => {
    const el = scroller.current;
    if (!el) return;
    following.current = true;
    setShowJump(false);
    el.scrollTop = el.scrollHeight;
  }, []);

  // A different conversation starts at its latest message.
  useEffect(() => {
    following.current = true;
    setShowJump(false);
    setChosen({});
  }, [sessionId]);

  // A new message (a chat sent from any tab, a new version) belongs to the newest
  // branch: show it, rather than keep showing an older branch it is not on.
  const count = useRef(messages.length);
  useEffect(() => {
    if (messages.length > count.current) setChosen({});
    count.current = messages.length;
  }, [messages.length]);

  // Before paint, so following never shows a frame of the text below the fold.
  useLayoutEffect(() => {
    const el = scroller.current;
    if (el && following.current) el.scrollTop = el.scrollHeight;
  }, [messages]);

  const last = messages[messages.length - 1];
  return (
    <div className="messages-wrap">
      <div
        ref={scroller}
        className="messages"
        role="log"
        aria-live="off"
        aria-label="Messages"
        tabIndex={0}
        onScroll={onScroll}
        data-testid="messages"
      >
        {messages.length === 0 && (
          <div className="empty">
            {history === "loading" ? (
              <p>Loading the conversation…</p>
            ) : (
              <>
                <p className="empty-title">What can I help with?</p>
                <p className="empty-hint">
                  Answers stream in word by word and survive a refresh, a lost connection or a server
                  restart.
                </p>
              </>
            )}
          </div>
        )}
        {shown.map(({ message, alternative }, index) => (
          <MessageView
            key={alternative ? `${alternative.kind}:${alternative.group}` : message.key}
            message={message}
            alternative={alternative}
            onPage={page}
            onEdit={onEdit && message.role === "user" ? edit : undefined}
            onRegenerate={
              // The last answer of the newest branch only: an older branch's is not the last.
              onRegenerate && index === shown.length - 1 && message.role === "assistant" && message === last
                ? regenerate
                : undefined
            }
          />
        ))}
      </div>
      {showJump && (
        <button type="button" className="jump-latest" onClick={jumpToLatest}>
          ↓ Latest
        </button>
      )}
      <div className="visually-hidden" aria-live="polite">
        {last && last.role === "assistant" && last.status !== "streaming"
          ? `Answer ${last.status === "completed" ? "finished" : last.status}.`
          : ""}
      </div>
    </div>
  );
}
