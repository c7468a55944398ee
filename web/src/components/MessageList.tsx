import { useCallback, useEffect, useLayoutEffect, useRef, useState } from "react";
import { ROOT, branchView } from "../chat/branches";
import type { ChatMessage, HistoryState } from "../chat/reducer";
import { MessageView } from "./MessageView";

interface Props {
  messages: ChatMessage[];
  history: HistoryState;
  sessionId: string | null;
  /** Regenerate the last answer (absent: not now, e.g. while one streams). */
  onRegenerate?: (messageId: string) => void;
  /** Send an edited version of a question (absent: not now); resolves when it was accepted. */
  onEdit?: (messageId: string, content: string) => Promise<void>;
}

/** How close to the bottom (px) still counts as "following" the conversation. */
const FOLLOW_THRESHOLD_PX = 48;

/**
 * The conversation. It follows new text while the reader is at the bottom and
 * stops following as soon as they scroll up; a button brings them back.
 */
export function MessageList({ messages, history, sessionId, onRegenerate, onEdit }: Props) {
  const scroller = useRef<HTMLDivElement>(null);
  // Which sibling the reader paged to, per parent (default: the way to the newest message).
  const [chosen, setChosen] = useState<Record<string, number>>({});
  const { shown, olderBranchShown } = branchView(messages, chosen);
  const page = useCallback((parent: string, index: number) => {
    setChosen((current) => ({ ...current, [parent]: index }));
  }, []);
  const edit = useCallback(
    async (message: ChatMessage, content: string) => {
      if (!message.id || !onEdit) return;
      await onEdit(message.id, content);
      // The new version is the newest: show it (and its answer) wherever the reader was.
      const parent = message.parentId ?? ROOT;
      setChosen(({ [parent]: _dropped, ...rest }) => rest);
    },
    [onEdit],
  );
  const regenerate = useCallback(
    (message: ChatMessage) => {
      if (!message.id || !onRegenerate) return;
      const parent = message.parentId ?? message.replyTo;
      if (parent) {
        setChosen(({ [parent]: _dropped, ...rest }) => rest);
      }
      onRegenerate(message.id);
    },
    [onRegenerate],
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

  // A new message continues the newest branch (the server appends there): show that branch.
  const last = messages[messages.length - 1];
  const sentNow = last !== undefined && last.role === "user" && last.id === null ? last.key : null;
  useEffect(() => {
    if (sentNow !== null) setChosen({});
  }, [sentNow]);

  // Before paint, so following never shows a frame of the text below the fold.
  useLayoutEffect(() => {
    const el = scroller.current;
    if (el && following.current) el.scrollTop = el.scrollHeight;
  }, [messages]);

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
            key={alternative ? `siblings:${alternative.parent}` : message.key}
            message={message}
            alternative={alternative}
            onPage={page}
            onRegenerate={
              onRegenerate && !olderBranchShown && index === shown.length - 1 && message.role === "assistant"
                ? regenerate
                : undefined
            }
            onEdit={onEdit && message.role === "user" ? edit : undefined}
          />
        ))}
        {olderBranchShown && (
          <p className="branch-note" data-testid="branch-note">
            You are looking at an older version of this conversation; a new message continues the newest one.
          </p>
        )}
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
