import { type FormEvent, memo, useState } from "react";
import Markdown, { type Components } from "react-markdown";
import remarkGfm from "remark-gfm";
import { STATUS_LABELS, describeError } from "../chat/errors";
import type { Shown } from "../chat/branches";
import { MAX_MESSAGE_LENGTH } from "../chat/protocol";
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
  /** Which of its siblings this message is (versions of a question, regenerated answers), or null. */
  alternative?: Shown["alternative"];
  onPage?: (parent: string, index: number) => void;
  /** Present on the last answer when it may be regenerated. */
  onRegenerate?: (message: ChatMessage) => void;
  /** Present on questions that may be edited now; resolves when the edit was accepted. */
  onEdit?: (message: ChatMessage, content: string) => Promise<void>;
}

interface PagerProps {
  alternative: NonNullable<Shown["alternative"]>;
  role: ChatMessage["role"];
  onPage?: ViewProps["onPage"];
}

function Pager({ alternative, role, onPage }: PagerProps) {
  const { parent, index, count } = alternative;
  const what = role === "user" ? "version" : "answer";
  const label = role === "user" ? "Versions of this message" : "Answers to this message";
  return (
    <span className="alternatives" role="group" aria-label={label}>
      <button
        type="button"
        className="icon-button"
        aria-label={`Previous ${what}`}
        disabled={index === 0}
        onClick={() => onPage?.(parent, index - 1)}
      >
        ‹
      </button>
      <span data-testid={role === "user" ? "version-position" : "alternative-position"}>
        {index + 1} / {count}
      </span>
      <button
        type="button"
        className="icon-button"
        aria-label={`Next ${what}`}
        disabled={index === count - 1}
        onClick={() => onPage?.(parent, index + 1)}
      >
        ›
      </button>
    </span>
  );
}

interface EditFormProps {
  message: ChatMessage;
  onEdit: NonNullable<ViewProps["onEdit"]>;
  onDone: () => void;
}

/** The inline editor of a question: its new text is sent as a new version, answered anew. */
function EditForm({ message, onEdit, onDone }: EditFormProps) {
  const [text, setText] = useState(message.content);
  const [error, setError] = useState<string | null>(null);
  const [sending, setSending] = useState(false);
  const tooLong = text.length > MAX_MESSAGE_LENGTH;
  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (!text.trim() || tooLong || sending) return;
    setSending(true);
    setError(null);
    onEdit(message, text).then(onDone, (failure: unknown) => {
      setSending(false);
      setError(failure instanceof Error ? failure.message : String(failure));
    });
  };
  return (
    <form className="edit-form" onSubmit={submit} aria-label="Edit message">
      <textarea
        className="edit-input"
        aria-label="Edited message"
        value={text}
        rows={Math.min(8, Math.max(2, text.split("\n").length))}
        autoFocus
        onChange={(event) => setText(event.target.value)}
        onKeyDown={(event) => {
          if (event.key === "Escape") onDone();
        }}
      />
      <div className="edit-actions">
        <button type="submit" className="send-button" disabled={sending || !text.trim() || tooLong}>
          Send
        </button>
        <button type="button" className="copy-button" onClick={onDone}>
          Cancel
        </button>
        {tooLong && (
          <span className="message-error">
            Too long: {text.length.toLocaleString()} of {MAX_MESSAGE_LENGTH.toLocaleString()} characters.
          </span>
        )}
        {error && (
          <span className="message-error" role="alert">
            Not sent: {error}
          </span>
        )}
      </div>
    </form>
  );
}

function MessageViewImpl({ message, alternative = null, onPage, onRegenerate, onEdit }: ViewProps) {
  const [editing, setEditing] = useState(false);
  const badge = STATUS_LABELS[message.status];
  const streaming = message.status === "streaming";
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
          <EditForm message={message} onEdit={onEdit} onDone={() => setEditing(false)} />
        ) : (
          <p className="plain">{message.content}</p>
        )}
      </div>
      {message.role === "user" && !editing && (alternative || (onEdit && message.id)) && (
        <div className="question-footer">
          {alternative && <Pager alternative={alternative} role="user" onPage={onPage} />}
          {onEdit && message.id && (
            <button type="button" className="copy-button" onClick={() => setEditing(true)}>
              Edit
            </button>
          )}
        </div>
      )}
      {message.role === "assistant" && (alternative || (!streaming && (message.content || message.usage))) && (
        <div className="answer-footer">
          {alternative && <Pager alternative={alternative} role="assistant" onPage={onPage} />}
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
