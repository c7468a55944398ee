import { cleanup, fireEvent, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { Composer } from "./Composer";

afterEach(cleanup);

function setup(props: Partial<Parameters<typeof Composer>[0]> = {}) {
  const onSend = vi.fn(() => true);
  const onStop = vi.fn();
  render(
    <Composer
      connection={{ status: "connected" }}
      generating={false}
      streamingId={null}
      onSend={onSend}
      onStop={onStop}
      {...props}
    />,
  );
  const input = screen.getByLabelText("Message") as HTMLTextAreaElement;
  return { input, onSend, onStop };
}

describe("Composer", () => {
  it("sends on Enter and clears the input", () => {
    const { input, onSend } = setup();
    fireEvent.change(input, { target: { value: "hello" } });
    fireEvent.keyDown(input, { key: "Enter" });
    expect(onSend).toHaveBeenCalledWith("hello");
    expect(input.value).toBe("");
  });

  it("does not send on Shift+Enter", () => {
    const { input, onSend } = setup();
    fireEvent.change(input, { target: { value: "line one" } });
    fireEvent.keyDown(input, { key: "Enter", shiftKey: true });
    expect(onSend).not.toHaveBeenCalled();
  });

  it("is disabled with a reason while an answer streams, and Stop or Esc cancels it", () => {
    const { input, onSend, onStop } = setup({ generating: true, streamingId: "a1" });
    expect(input.readOnly).toBe(true);
    expect(input.getAttribute("aria-disabled")).toBe("true");
    expect(screen.getByTestId("composer-reason").textContent).toMatch(/answering/);
    fireEvent.keyDown(input, { key: "Enter" });
    expect(onSend).not.toHaveBeenCalled();
    fireEvent.click(screen.getByRole("button", { name: "Stop" }));
    fireEvent.keyDown(input, { key: "Escape" });
    expect(onStop).toHaveBeenCalledTimes(2);
    expect(onStop).toHaveBeenCalledWith("a1");
  });

  it("says why it cannot send while reconnecting", () => {
    setup({ connection: { status: "reconnecting", attempt: 1, retryAt: 0, lastCloseCode: 1006 } });
    expect(screen.getByTestId("composer-reason").textContent).toMatch(/connection was lost/);
  });
});
