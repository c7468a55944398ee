// Who is signed in, and signing in and out (`GET /api/auth`, `POST /api/login`, `POST /api/logout`).
// In accounts mode the session lives in an HttpOnly cookie: this code never sees the token.

import { ApiError } from "../chat/api";

export type AuthMode = "dev" | "jwt" | "accounts";

export interface SignedInUser {
  user_id: string;
  admin: boolean;
}

export interface AuthInfo {
  mode: AuthMode;
  /** The user the request's credentials name; null when nobody is signed in. */
  user: SignedInUser | null;
}

const MODES: readonly AuthMode[] = ["dev", "jwt", "accounts"];

async function apiError(response: Response): Promise<ApiError> {
  let code = "http_error";
  let detail = `${response.status} ${response.statusText}`;
  try {
    const body = (await response.json()) as { code?: unknown; detail?: unknown };
    if (typeof body.code === "string") code = body.code;
    if (typeof body.detail === "string") detail = body.detail;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, code, detail);
}

/** The server's auth mode and the signed-in user. A server without the endpoint is a dev server. */
export async function fetchAuthInfo(signal?: AbortSignal): Promise<AuthInfo> {
  const response = await fetch("/api/auth", { headers: { Accept: "application/json" }, signal });
  if (response.status === 404) return { mode: "dev", user: null };
  if (!response.ok) throw await apiError(response);
  const body = (await response.json()) as { mode?: unknown; user?: SignedInUser | null };
  const mode = MODES.find((m) => m === body.mode) ?? "dev";
  return { mode, user: body.user ?? null };
}

/** Sign in; the server sets the session cookie. Throws `ApiError` (401 wrong name or password, 429). */
export async function signIn(username: string, password: string): Promise<SignedInUser> {
  const response = await fetch("/api/login", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ username, password }),
  });
  if (!response.ok) throw await apiError(response);
  const body = (await response.json()) as SignedInUser;
  return { user_id: body.user_id, admin: body.admin };
}

/** Sign out: the server clears the session cookie. */
export async function signOut(): Promise<void> {
  const response = await fetch("/api/logout", { method: "POST" });
  if (!response.ok) throw await apiError(response);
}
