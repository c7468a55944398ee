import { describeError } from "../chat/errors";
import type { Notice } from "../chat/reducer";

interface Props {
  notices: Notice[];
  onDismiss(id: number): void;
}

/** Server errors not tied to one message, in words, each dismissible. */
export function Notices({ notices, onDismiss }: Props) {
  if (notices.length === 0) return null;
  return (
    <ul className="notices" aria-live="assertive">
      {notices.map((notice) => (
        <li key={notice.id} className="notice" data-testid="notice" data-code={notice.code}>
          <span>{describeError(notice.code, notice.detail)}</span>
          <button
            type="button"
            className="link-button"
            aria-label="Dismiss this message"
            onClick={() => onDismiss(notice.id)}
          >
            ×
          </button>
        </li>
      ))}
    </ul>
  );
}
