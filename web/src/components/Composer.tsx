import { type FormEvent, type KeyboardEvent, useId, useRef, useState } from "react";
import { MAX_MESSAGE_LENGTH } from "../chat/protocol";
import type { ConnectionState } from "../chat/reducer";

interface Props {
  connection: ConnectionState;
  generating: boolean;
  /** The running answer's id once the server named it (Stop needs it). */
  streamingId: string | null;
  onSend(text: string): boolean;
  onStop(messageId: string): void;
}

function blockedReason(connection: ConnectionState, generating: boolean): string | null {
  if (generating) return "The assistant is answering. Press Stop (or Esc) to end the answer early.";
  switch (connection.status) {
    case "idle":
    case "connected":
      return null;
    case "connecting":
      return "Connecting to the server…";
    case "reconnecting":
      return "The connection was lost; sending resumes when it is back.";
    case "offline":
      return "Offline: sending resumes when the connection is back.";
    case "closed":
      return connection.reason;
  }
}

/** The message input: Enter sends, Shift+Enter adds a line, Esc stops a running answer. */
export function Composer({ connection, generating, streamingId, onSend, onStop }: Props) {
  const [text, setText] = useState("");
  const input = useRef<HTMLTextAreaElement>(null);
  const reasonId = useId();
  const reason = blockedReason(connection, generating);
  const blocked = reason !== null;
  const tooLong = text.length > MAX_MESSAGE_LENGTH;

  const submit = () => {
    if (blocked || !text.trim()) return;
    if (onSend(text)) setText("");
  };
  const onSubmit = (event: FormEvent) => {
    event.preventDefault();
    submit();
  };
  const onKeyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if (event.key === "Enter" && !event.shiftKey && !event.nativeEvent.isComposing) {
      event.preventDefault();
      submit();
    } else if (event.key === "Escape" && streamingId) {
      event.preventDefault();
      onStop(streamingId);
    }
  };

  return (
    <form className="composer" onSubmit={onSubmit} aria-label="Send a message">
      <div className="composer-row">
        <textarea
          id="composer-input"
          ref={input}
          className="composer-input"
          rows={1}
          value={text}
          placeholder="Message chatrelay (Enter to send, Shift+Enter for a new line)"
          aria-label="Message"
          aria-describedby={reasonId}
          aria-disabled={blocked}
          readOnly={blocked}
          autoFocus
          onChange={(event) => setText(event.target.value)}
          onKeyDown={onKeyDown}
        />
        {generating ? (
          <button
            type="button"
            className="stop-button"
            disabled={!streamingId}
            onClick={() => streamingId && onStop(streamingId)}
          >
            Stop
          </button>
        ) : (
          <button type="submit" className="send-button" disabled={blocked || !text.trim() || tooLong}>
            Send
          </button>
        )}
      </div>
      <p id={reasonId} className="composer-reason" data-testid="composer-reason">
        {reason ??
          (tooLong
            ? `Too long: ${text.length.toLocaleString()} of ${MAX_MESSAGE_LENGTH.toLocaleString()} characters.`
            : " ")}
      </p>
    </form>
  );
}
