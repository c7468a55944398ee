import { useEffect, useState } from "react";
import type { ConnectionState } from "../chat/reducer";

interface Props {
  connection: ConnectionState;
  node: string | null;
  onRetry(): void;
}

/** Seconds left before `retryAt`, ticking while a reconnect is scheduled. */
function useCountdown(retryAt: number | null): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (retryAt === null) return;
    setNow(Date.now());
    const timer = setInterval(() => setNow(Date.now()), 250);
    return () => clearInterval(timer);
  }, [retryAt]);
  return retryAt === null ? 0 : Math.max(0, Math.ceil((retryAt - now) / 1000));
}

/** Connection state (connected, reconnecting with countdown, offline) and the serving node. */
export function ConnectionBadge({ connection, node, onRetry }: Props) {
  const retryAt = connection.status === "reconnecting" ? connection.retryAt : null;
  const seconds = useCountdown(retryAt);
  let label: string;
  let canRetry = false;
  switch (connection.status) {
    case "idle":
      label = "ready";
      break;
    case "connecting":
      label = connection.attempt > 0 ? "reconnecting…" : "connecting…";
      break;
    case "connected":
      label = "connected";
      break;
    case "reconnecting":
      label = seconds > 0 ? `reconnecting in ${seconds} s` : "reconnecting…";
      canRetry = seconds > 0;
      break;
    case "offline":
      label = `offline: ${connection.reason}`;
      canRetry = true;
      break;
    case "closed":
      label = `disconnected: ${connection.reason}`;
      break;
  }
  return (
    <div className="connection" data-testid="connection" data-status={connection.status}>
      <span className="connection-dot" aria-hidden="true" />
      <span className="connection-label" role="status" aria-live="polite">
        {label}
      </span>
      {canRetry && (
        <button type="button" className="link-button" onClick={onRetry}>
          Retry now
        </button>
      )}
      {node && (
        <span className="connection-node" data-testid="node" title="The gateway node serving this tab">
          node <code>{node}</code>
        </span>
      )}
    </div>
  );
}
