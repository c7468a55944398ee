import { type FormEvent, useState } from "react";
import { ApiError } from "../chat/api";
import { type SignedInUser, signIn } from "../auth/session";

interface LoginPageProps {
  onSignedIn: (user: SignedInUser) => void;
  /** Defaults to `POST /api/login`. */
  login?: (username: string, password: string) => Promise<SignedInUser>;
}

function explain(error: unknown): string {
  if (error instanceof ApiError) {
    if (error.status === 401) return "Wrong user name or password.";
    if (error.status === 429) return `Too many attempts. ${error.message}`;
    return error.message;
  }
  return "The server could not be reached. Try again.";
}

/** The accounts-mode sign-in form. */
export function LoginPage({ onSignedIn, login = signIn }: LoginPageProps) {
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (busy) return;
    setBusy(true);
    setError(null);
    login(username.trim(), password).then(
      (user) => onSignedIn(user),
      (failure: unknown) => {
        setError(explain(failure));
        setPassword("");
        setBusy(false);
      },
    );
  };

  return (
    <main className="login">
      <form className="login-form" onSubmit={submit} aria-labelledby="login-title">
        <h1 id="login-title">Sign in to chatrelay</h1>
        <label htmlFor="login-username">User name</label>
        <input
          id="login-username"
          name="username"
          autoComplete="username"
          required
          autoFocus
          value={username}
          onChange={(e) => setUsername(e.target.value)}
        />
        <label htmlFor="login-password">Password</label>
        <input
          id="login-password"
          name="password"
          type="password"
          autoComplete="current-password"
          required
          value={password}
          onChange={(e) => setPassword(e.target.value)}
        />
        {error && (
          <p className="login-error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
