import { memo } from "react";
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
  /** Which of its alternatives this answer is (regenerated answers), or null. */
  alternative?: Shown["alternative"];
  onPage?: (replyTo: string, index: number) => void;
  /** Present on the last answer when it may be regenerated. */
  onRegenerate?: (message: ChatMessage) => void;
}

function Pager({ alternative, onPage }: { alternative: NonNullable<Shown["alternative"]>; onPage?: ViewProps["onPage"] }) {
  const { replyTo, index, count } = alternative;
  return (
    <span className="alternatives" role="group" aria-label="Answers to this message">
      <button
        type="button"
        className="icon-button"
        aria-label="Previous answer"
        disabled={index === 0}
        onClick={() => onPage?.(replyTo, index - 1)}
      >
        ‹
      </button>
      <span data-testid="alternative-position">
        {index + 1} / {count}
      </span>
      <button
        type="button"
        className="icon-button"
        aria-label="Next answer"
        disabled={index === count - 1}
        onClick={() => onPage?.(replyTo, index + 1)}
      >
        ›
      </button>
    </span>
  );
}

function MessageViewImpl({ message, alternative = null, onPage, onRegenerate }: ViewProps) {
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
        ) : (
          <p className="plain">{message.content}</p>
        )}
      </div>
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
