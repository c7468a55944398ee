import { useCallback, useEffect, useState } from "react";
import { App } from "../App";
import { LoginPage } from "../components/LoginPage";
import { type AuthInfo, fetchAuthInfo, signOut } from "./session";

type GateState = { phase: "loading" } | { phase: "ready"; info: AuthInfo } | { phase: "error"; message: string };

/**
 * Chooses what the page shows from the server's auth mode: the chat as it always was in dev
 * mode, a sign-in form then the chat in accounts mode, a note in jwt mode (whose tokens come
 * from the operator's own login, not from this page).
 */
export function AuthGate() {
  const [state, setState] = useState<GateState>({ phase: "loading" });

  const check = useCallback((signal?: AbortSignal) => {
    fetchAuthInfo(signal).then(
      (info) => setState({ phase: "ready", info }),
      (error: unknown) => {
        if (signal?.aborted) return;
        setState({ phase: "error", message: error instanceof Error ? error.message : String(error) });
      },
    );
  }, []);

  useEffect(() => {
    const abort = new AbortController();
    check(abort.signal);
    return () => abort.abort();
  }, [check]);

  const leave = useCallback(() => {
    signOut().finally(() => check());
  }, [check]);

  if (state.phase === "loading") return <p className="gate-message">Loading…</p>;
  if (state.phase === "error") {
    return (
      <p className="gate-message" role="alert">
        The server could not be reached ({state.message}).
      </p>
    );
  }
  const { mode, user } = state.info;
  if (mode === "dev") return <App />;
  if (mode === "jwt") {
    return (
      <p className="gate-message">
        This server accepts tokens from your product's own login; open the chat from there.
      </p>
    );
  }
  if (user === null) {
    return <LoginPage onSignedIn={(signedIn) => setState({ phase: "ready", info: { mode, user: signedIn } })} />;
  }
  return <App key={user.user_id} account={{ userId: user.user_id, onSignOut: leave }} />;
}
