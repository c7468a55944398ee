import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { AuthGate } from "./AuthGate";

afterEach(cleanup);

interface Call {
  url: string;
  method: string;
}

/** A fake server: `/api/auth` answers from `signedIn`, login checks one password. */
function fakeServer(mode: string, signedIn: { user_id: string; admin: boolean } | null) {
  const calls: Call[] = [];
  let user = signedIn;
  const json = (body: unknown, status = 200) =>
    new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
  const fetchMock = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = String(input);
    const method = init?.method ?? "GET";
    calls.push({ url, method });
    if (url === "/api/auth") return json({ mode, user });
    if (url === "/api/login") {
      const { username, password } = JSON.parse(String(init?.body)) as {
        username: string;
        password: string;
      };
      if (password !== "right password") {
        return json({ code: "not_authenticated", detail: "unknown user or wrong password" }, 401);
      }
      user = { user_id: username, admin: false };
      return json({ ...user, expires_at: 0 });
    }
    if (url === "/api/logout") {
      user = null;
      return new Response(null, { status: 204 });
    }
    if (url.startsWith("/api/sessions")) return json({ sessions: [] });
    return json({ code: "not_found", detail: url }, 404);
  });
  vi.stubGlobal("fetch", fetchMock);
  return calls;
}

beforeEach(() => {
  window.history.replaceState(null, "", "/");
  vi.unstubAllGlobals();
});

describe("AuthGate", () => {
  it("keeps dev mode's chat and user line", async () => {
    fakeServer("dev", { user_id: "demo_user", admin: false });
    render(<AuthGate />);
    expect(await screen.findByText("+ New chat")).toBeTruthy();
    expect(screen.queryByLabelText("Password")).toBeNull();
    expect(screen.queryByRole("button", { name: "Sign out" })).toBeNull();
  });

  it("asks an accounts-mode visitor to sign in, then shows who they are", async () => {
    const calls = fakeServer("accounts", null);
    render(<AuthGate />);
    fireEvent.change(await screen.findByLabelText("User name"), { target: { value: "alice" } });
    fireEvent.change(screen.getByLabelText("Password"), { target: { value: "wrong" } });
    fireEvent.click(screen.getByRole("button", { name: "Sign in" }));
    expect((await screen.findByRole("alert")).textContent).toBe("Wrong user name or password.");

    fireEvent.change(screen.getByLabelText("Password"), { target: { value: "right password" } });
    fireEvent.click(screen.getByRole("button", { name: "Sign in" }));
    const sidebar = await screen.findByRole("complementary", { name: "Conversations" });
    await waitFor(() => expect(sidebar.textContent).toContain("Signed in as alice"));
    expect(calls.some((c) => c.url.startsWith("/api/sessions"))).toBe(true);
  });

  it("signs out back to the form", async () => {
    const calls = fakeServer("accounts", { user_id: "bob", admin: false });
    render(<AuthGate />);
    fireEvent.click(await screen.findByRole("button", { name: "Sign out" }));
    expect(await screen.findByLabelText("User name")).toBeTruthy();
    expect(calls.some((c) => c.url === "/api/logout" && c.method === "POST")).toBe(true);
  });
});
