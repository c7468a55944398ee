import { useCallback, useEffect, useState } from "react";
import { urlForSession } from "../chat/identity";
import { type ClusterView, type NodeStatus, cancelAnswer, fetchCluster, formatSeconds } from "./cluster";
import { Sparkline } from "./Sparkline";
import "./admin.css";

/** How often the view asks any gateway for the cluster (nodes report every 2 s). */
export const REFRESH_MS = 2000;

function stateOf(node: NodeStatus): string {
  return node.state;
}

function NodeCard({ node }: { node: NodeStatus }) {
  const times = node.history.map((p) => p[0]);
  const latency = node.kind === "worker" ? "TTFT" : "chunk latency";
  const errors = Object.entries(node.errors);
  return (
    <article className="node-card" aria-label={`${node.kind} ${node.node_id}`} data-testid="node">
      <header>
        <h3>
          <span className="node-kind">{node.kind}</span> {node.node_id}
        </h3>
        <span className={`node-state state-${stateOf(node)}`}>{stateOf(node)}</span>
      </header>
      <dl className="node-numbers">
        {node.kind === "gateway" ? (
          <>
            <dt>sockets</dt>
            <dd>{node.sockets}</dd>
            <dt>relayed sessions</dt>
            <dd>{node.running}</dd>
          </>
        ) : (
          <>
            <dt>running answers</dt>
            <dd>{node.running}</dd>
            <dt>model</dt>
            <dd>{node.model ?? "–"}</dd>
          </>
        )}
        <dt>chunks/s</dt>
        <dd>{node.chunks_per_s}</dd>
        <dt>{latency} p50 / p99</dt>
        <dd>
          {formatSeconds(node.latency_p50)} / {formatSeconds(node.latency_p99)}
        </dd>
        <dt>Redis / store</dt>
        <dd>
          {node.engine} / {node.store}
        </dd>
        <dt>errors</dt>
        <dd>{errors.length ? errors.map(([code, n]) => `${code} ${n}`).join(", ") : "none"}</dd>
      </dl>
      {node.cooled_down && node.cooled_down.length > 0 && (
        <p className="cooled">Cooled down by this balancer: {node.cooled_down.join(", ")}</p>
      )}
      <div className="sparks">
        <Sparkline
          label={node.kind === "gateway" ? "sockets" : "running answers"}
          times={times}
          values={node.history.map((p) => (node.kind === "gateway" ? p[1] : p[2]))}
        />
        <Sparkline label="chunks/s" times={times} values={node.history.map((p) => p[3])} />
        <Sparkline label={`${latency} p99 (s)`} times={times} values={node.history.map((p) => p[5])} />
      </div>
    </article>
  );
}

/** The cluster view at /admin: every node and the answers streaming now, refreshed every 2 s. */
export default function AdminPage() {
  const [view, setView] = useState<ClusterView | null>(null);
  const [error, setError] = useState<string | null>(null);

  const load = useCallback((signal?: AbortSignal) => {
    fetchCluster(signal).then(
      (next) => {
        setView(next);
        setError(null);
      },
      (failure: unknown) => {
        if (!signal?.aborted) setError(failure instanceof Error ? failure.message : String(failure));
      },
    );
  }, []);

  useEffect(() => {
    document.title = "Cluster · chatrelay";
    const abort = new AbortController();
    load(abort.signal);
    const timer = setInterval(() => load(abort.signal), REFRESH_MS);
    return () => {
      clearInterval(timer);
      abort.abort();
    };
  }, [load]);

  const cancel = (sessionId: string, messageId: string) => {
    cancelAnswer(sessionId, messageId).then(
      () => load(),
      (failure: unknown) => setError(failure instanceof Error ? failure.message : String(failure)),
    );
  };

  const gateways = view?.nodes.filter((n) => n.kind === "gateway") ?? [];
  const workers = view?.nodes.filter((n) => n.kind === "worker") ?? [];
  return (
    <main className="admin">
      <header className="admin-header">
        <h1>Cluster</h1>
        <p>
          {view ? `answered by ${view.node}, ${gateways.length} gateways, ${workers.length} workers` : "Loading…"}{" "}
          <a href="/">Back to chat</a>
        </p>
      </header>
      {error && (
        <p className="admin-error" role="alert">
          {error}
        </p>
      )}
      <section aria-labelledby="gateways-title">
        <h2 id="gateways-title">Gateways</h2>
        <div className="node-grid">
          {gateways.map((node) => (
            <NodeCard key={node.node_id} node={node} />
          ))}
        </div>
      </section>
      <section aria-labelledby="workers-title">
        <h2 id="workers-title">Workers</h2>
        <div className="node-grid">
          {workers.map((node) => (
            <NodeCard key={node.node_id} node={node} />
          ))}
        </div>
      </section>
      <section aria-labelledby="streaming-title">
        <h2 id="streaming-title">Streaming now</h2>
        {view && view.sessions.length === 0 ? (
          <p>No answer is streaming.</p>
        ) : (
          <table className="streaming">
            <thead>
              <tr>
                <th scope="col">Session</th>
                <th scope="col">User</th>
                <th scope="col">Worker</th>
                <th scope="col">Gateways</th>
                <th scope="col">For</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {view?.sessions.map((s) => (
                <tr key={s.message_id} data-testid="streaming-session">
                  <td>
                    <a href={urlForSession(s.session_id)}>{s.session_id}</a>
                  </td>
                  <td>{s.user_id}</td>
                  <td>{s.worker}</td>
                  <td>{s.gateways.join(", ") || "–"}</td>
                  <td>{Math.max(0, Math.round(view.at - s.started_at))} s</td>
                  <td>
                    <button type="button" onClick={() => cancel(s.session_id, s.message_id)}>
                      Cancel<span className="visually-hidden"> the answer in {s.session_id}</span>
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
    </main>
  );
}
