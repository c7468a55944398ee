// The cluster view's REST calls and the shape of `GET /api/admin/cluster` (docs/protocol.md).

/** One point of a node's 15-minute history: [unix s, sockets, running, chunks/s, p50 s, p99 s]. */
export type HistoryPoint = [number, number, number, number, number | null, number | null];

export interface WorkerView {
  url: string;
  state: string;
  failures: number;
  requests: number;
  last_error: string | null;
}

export interface StreamingAnswer {
  message_id: string;
  session_id: string;
  user_id: string;
  started_at: number;
  worker: string;
  gateways: string[];
}

export interface NodeStatus {
  kind: "gateway" | "worker";
  node_id: string;
  state: "up" | "draining" | "degraded";
  started_at: number;
  updated_at: number;
  sockets: number;
  running: number;
  chunks_per_s: number;
  latency_p50: number | null;
  latency_p99: number | null;
  errors: Record<string, number>;
  engine: "up" | "down";
  store: "up" | "down";
  history: HistoryPoint[];
  model?: string;
  workers?: WorkerView[];
  cooled_down?: string[];
  streaming?: Omit<StreamingAnswer, "worker" | "gateways">[];
}

export interface ClusterView {
  node: string;
  at: number;
  nodes: NodeStatus[];
  sessions: StreamingAnswer[];
}

async function answer<T>(response: Response): Promise<T> {
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try {
      const body = (await response.json()) as { detail?: unknown };
      if (typeof body.detail === "string") detail = body.detail;
    } catch {
      // not JSON: keep the status line
    }
    throw new Error(detail);
  }
  return (await response.json()) as T;
}

export async function fetchCluster(signal?: AbortSignal): Promise<ClusterView> {
  return answer(await fetch("/api/admin/cluster", { headers: { Accept: "application/json" }, signal }));
}

export async function cancelAnswer(sessionId: string, messageId: string): Promise<void> {
  await answer(
    await fetch("/api/admin/cancel", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ session_id: sessionId, message_id: messageId }),
    }),
  );
}

/** Milliseconds as people read them: "–" when unknown, "850 ms", "1.2 s". */
export function formatSeconds(value: number | null): string {
  if (value === null) return "–";
  return value < 1 ? `${Math.round(value * 1000)} ms` : `${value.toFixed(1)} s`;
}
