import { useEffect, useState } from "react";

/** How long "Copied" stays on the button. */
const COPIED_MS = 2000;

/**
 * Copies `text` to the clipboard; says so for a moment (and to screen readers).
 * `what` ("answer", "python code") follows the visible word for screen readers only.
 */
export function CopyButton({ text, what, className }: { text: string; what: string; className?: string }) {
  const [state, setState] = useState<"idle" | "copied" | "failed">("idle");
  useEffect(() => {
    if (state === "idle") return;
    const timer = setTimeout(() => setState("idle"), COPIED_MS);
    return () => clearTimeout(timer);
  }, [state]);
  const copy = () => {
    navigator.clipboard.writeText(text).then(
      () => setState("copied"),
      () => setState("failed"),
    );
  };
  return (
    <button type="button" className={`copy-button ${className ?? ""}`.trim()} onClick={copy}>
      <span aria-live="polite">{state === "copied" ? "Copied" : state === "failed" ? "Copy failed" : "Copy"}</span>
      <span className="visually-hidden"> {what}</span>
    </button>
  );
}
