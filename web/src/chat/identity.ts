// Dev auth: the user id lives in localStorage (the all-in-one server trusts it).

export const USER_ID_KEY = "chatrelay.user_id";
export const DEFAULT_USER_ID = "demo_user";

export function currentUserId(): string {
  try {
    const stored = window.localStorage.getItem(USER_ID_KEY);
    if (stored && /^[A-Za-z0-9_.:@-]{1,128}$/.test(stored)) return stored;
  } catch {
    // storage disabled: fall back to the default user
  }
  return DEFAULT_USER_ID;
}

/** The session named in the URL (`/?session=<id>`), if any. */
export function sessionFromUrl(search: string = window.location.search): string | null {
  const id = new URLSearchParams(search).get("session");
  // Ids start with a letter or digit (docs/protocol.md): `..` would be a path segment.
  return id && /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/.test(id) ? id : null;
}

export function urlForSession(sessionId: string | null): string {
  return sessionId ? `/?session=${encodeURIComponent(sessionId)}` : "/";
}
