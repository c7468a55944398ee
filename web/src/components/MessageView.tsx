import { memo, useState } from "react";
import Markdown, { type Components } from "react-markdown";
import remarkGfm from "remark-gfm";
import { STATUS_LABELS, describeError } from "../chat/errors";
import type { Shown } from "../chat/alternatives";
import type { ChatMessage } from "../chat/reducer";
import type { Usage } from "../chat/wire";
import { CodeBlock } from "./CodeBlock";
import { CopyButton } from "./CopyButton";

interface HastNode {
  type: string;
  tagName?: string;
  value?: string;
  properties?: { className?: unknown };
  children?: HastNode[];
}

function textOf(node: HastNode): string {
  return node.type === "text" ? (node.value ?? "") : (node.children ?? []).map(textOf).join("");
}

function languageOf(node: HastNode | undefined): string | null {
  const classes = node?.properties?.className;
  const found = Array.isArray(classes)
    ? classes.find((c): c is string => typeof c === "string" && c.startsWith("language-"))
    : undefined;
  return found ? found.slice("language-".length) : null;
}

function formatMs(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** The quiet line under an answer: model, tokens, time to first token, duration. */
export function usageLine(usage: Usage): string {
  const parts = [usage.model, `${usage.tokens} tokens`];
  if (usage.ttft_ms !== null) parts.push(`first token ${formatMs(usage.ttft_ms)}`);
  parts.push(formatMs(usage.duration_ms));
  return parts.join(" · ");
}

// No rehype-raw: HTML in a model's answer is shown as text, never parsed into the DOM.
// react-markdown's default URL transform already drops javascript: and similar links.
// An image is shown as a link, never fetched: a prompt-injected model could otherwise
// send the conversation out in an image URL without a click (the CSP's img-src is the
// second line).
const COMPONENTS: Components = {
  pre: ({ node }) => {
    const code = (node as HastNode | undefined)?.children?.find((child) => child.tagName === "code");
    return <CodeBlock code={code ? textOf(code).replace(/\n$/, "") : ""} language={languageOf(code)} />;
  },
  a: ({ node: _node, ...props }) => <a {...props} target="_blank" rel="noopener noreferrer nofollow" />,
  img: ({ src, alt }) => (
    <a
      className="image-link"
      data-testid="image-link"
      href={typeof src === "string" ? src : undefined}
      target="_blank"
      rel="noopener noreferrer nofollow"
    >
      {`[image${alt ? `: ${alt}` : ""}] ${typeof src === "string" ? src : ""}`.trim()}
    </a>
  ),
};
const REMARK_PLUGINS = [remarkGfm];

interface ViewProps {
  message: ChatMessage;
  /** Which of its versions this message is (regenerated answers, edited questions), or null. */
  alternative?: Shown["alternative"];
  onPage?: (group: string, index: number) => void;
  /** Present on the last answer when it may be regenerated. */
  onRegenerate?: (message: ChatMessage) => void;
  /** Present on questions when they may be edited (the conversation forks there). */
  onEdit?: (message: ChatMessage, content: string) => void;
}

const PAGER_WORDS = {
  answers: { group: "Answers to this message", previous: "Previous answer", next: "Next answer", testId: "alternative-position" },
  versions: { group: "Versions of this message", previous: "Previous version", next: "Next version", testId: "version-position" },
} as const;

function Pager({ alternative, onPage }: { alternative: NonNullable<Shown["alternative"]>; onPage?: ViewProps["onPage"] }) {
  const { group, index, count, kind } = alternative;
  const words = PAGER_WORDS[kind];
  return (
    <span className="alternatives" role="group" aria-label={words.group}>
      <button
        type="button"
        className="icon-button"
        aria-label={words.previous}
        disabled={index === 0}
        onClick={() => onPage?.(group, index - 1)}
      >
        ‹
      </button>
      <span data-testid={words.testId}>
        {index + 1} / {count}
      </span>
      <button
        type="button"
        className="icon-button"
        aria-label={words.next}
        disabled={index === count - 1}
        onClick={() => onPage?.(group, index + 1)}
      >
        ›
      </button>
    </span>
  );
}

/** A question's text made editable in place; sending it asks the edited version. */
function QuestionEditor({ initial, onSend, onCancel }: { initial: string; onSend: (text: string) => void; onCancel: () => void }) {
  const [text, setText] = useState(initial);
  const blank = text.trim() === "";
  return (
    <form
      className="question-editor"
      onSubmit={(event) => {
        event.preventDefault();
        if (!blank) onSend(text);
      }}
    >
      <textarea
        aria-label="Edit your message"
        data-testid="edit-input"
        value={text}
        autoFocus
        rows={Math.min(8, Math.max(2, text.split("\n").length))}
        onChange={(event) => setText(event.target.value)}
        onKeyDown={(event) => {
          if (event.key === "Escape") onCancel();
        }}
      />
      <div className="question-editor-actions">
        <button type="submit" className="copy-button" disabled={blank} aria-label="Send the edited message">
          Send
        </button>
        <button type="button" className="copy-button" onClick={onCancel} aria-label="Cancel the edit">
          Cancel
        </button>
      </div>
    </form>
  );
}

function MessageViewImpl({ message, alternative = null, onPage, onRegenerate, onEdit }: ViewProps) {
  const badge = STATUS_LABELS[message.status];
  const streaming = message.status === "streaming";
  const [editing, setEditing] = useState(false);
  return (
    <article
      className={`message message-${message.role}`}
      data-testid="message"
      data-role={message.role}
      data-status={message.status}
      data-message-id={message.id ?? ""}
      aria-busy={streaming}
      title={message.status === "sending" ? "Sending…" : undefined}
    >
      <div className="message-author">{message.role === "user" ? "You" : "Assistant"}</div>
      <div className="message-body" data-testid="message-body">
        {message.role === "assistant" ? (
          <div className="markdown">
            {message.content ? (
              <Markdown remarkPlugins={REMARK_PLUGINS} components={COMPONENTS} skipHtml={false}>
                {message.content}
              </Markdown>
            ) : streaming ? null : (
              <p className="muted" data-testid="empty-answer">
                (no text was stored for this answer)
              </p>
            )}
            {streaming && <span className="cursor" aria-hidden="true" />}
          </div>
        ) : editing && onEdit ? (
          <QuestionEditor
            initial={message.content}
            onCancel={() => setEditing(false)}
            onSend={(text) => {
              setEditing(false);
              onEdit(message, text);
            }}
          />
        ) : (
          <p className="plain">{message.content}</p>
        )}
      </div>
      {message.role === "user" && !editing && (alternative || (onEdit && message.id)) && (
        <div className="question-footer">
          {alternative && <Pager alternative={alternative} onPage={onPage} />}
          {onEdit && message.id && (
            <button type="button" className="copy-button" onClick={() => setEditing(true)}>
              Edit
            </button>
          )}
        </div>
      )}
      {message.role === "assistant" && (alternative || (!streaming && (message.content || message.usage))) && (
        <div className="answer-footer">
          {alternative && <Pager alternative={alternative} onPage={onPage} />}
          {onRegenerate && !streaming && message.id && (
            <button type="button" className="copy-button" onClick={() => onRegenerate(message)}>
              Regenerate
            </button>
          )}
          {message.content && !streaming && <CopyButton text={message.content} what="answer" className="copy-answer" />}
          {message.usage && (
            <span className="usage-line" data-testid="usage-line">
              {usageLine(message.usage)}
            </span>
          )}
        </div>
      )}
      {(badge || message.sendError) && (
        <div className="message-meta">
          {badge && (
            <span className={`badge badge-${message.status}`} title={badge.title} data-testid="status-badge">
              {badge.label}
            </span>
          )}
          {message.error && <span className="message-error">{message.error}</span>}
          {message.sendError && (
            <span className="message-error" data-testid="send-error" data-code={message.sendError.code}>
              Not sent. {describeError(message.sendError.code, message.sendError.detail)}
            </span>
          )}
        </div>
      )}
    </article>
  );
}

/** One message; finished ones do not re-render while another streams. */
export const MessageView = memo(MessageViewImpl);
