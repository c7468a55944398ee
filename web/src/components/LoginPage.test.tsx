import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ApiError } from "../chat/api";
import { LoginPage } from "./LoginPage";

afterEach(cleanup);

function fill(username: string, password: string) {
  fireEvent.change(screen.getByLabelText("User name"), { target: { value: username } });
  fireEvent.change(screen.getByLabelText("Password"), { target: { value: password } });
  fireEvent.click(screen.getByRole("button", { name: "Sign in" }));
}

describe("LoginPage", () => {
  it("signs in with the typed name and password", async () => {
    const login = vi.fn(async (username: string) => ({ user_id: username, admin: false }));
    const onSignedIn = vi.fn();
    render(<LoginPage login={login} onSignedIn={onSignedIn} />);
    fill(" alice ", "correct horse");
    await waitFor(() => expect(onSignedIn).toHaveBeenCalledWith({ user_id: "alice", admin: false }));
    expect(login).toHaveBeenCalledWith("alice", "correct horse");
  });

  it("shows a wrong password as an alert and clears the password", async () => {
    const login = vi.fn(async () => {
      throw new ApiError(401, "not_authenticated", "unknown user or wrong password");
    });
    const onSignedIn = vi.fn();
    render(<LoginPage login={login} onSignedIn={onSignedIn} />);
    fill("alice", "wrong");
    expect((await screen.findByRole("alert")).textContent).toBe("Wrong user name or password.");
    expect((screen.getByLabelText("Password") as HTMLInputElement).value).toBe("");
    expect(onSignedIn).not.toHaveBeenCalled();
    expect((screen.getByRole("button", { name: "Sign in" }) as HTMLButtonElement).disabled).toBe(false);
  });

  it("says when there were too many attempts", async () => {
    const login = vi.fn(async () => {
      throw new ApiError(429, "rate_limited", "too many login attempts; retry in 10 s");
    });
    render(<LoginPage login={login} onSignedIn={vi.fn()} />);
    fill("alice", "again");
    expect((await screen.findByRole("alert")).textContent).toContain("retry in 10 s");
  });
});
