// The page's keyboard shortcuts (listed in docs/web.md and the sidebar's help line):
//   Ctrl/⌘+Shift+O  new chat
//   Shift+Esc or /   focus the message input ("/" only when not typing somewhere)
//   Ctrl/⌘+K        search conversations
//   Esc             stop the running answer (from anywhere but a text field;
//                   the message input's own Esc does the same)

import { useEffect, useRef } from "react";

export interface ShortcutActions {
  newChat(): void;
  stop(): void;
}

function typing(target: EventTarget | null): boolean {
  return (
    target instanceof HTMLElement &&
    (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName))
  );
}

function focus(id: string): void {
  document.getElementById(id)?.focus();
}

/** What a key press asks for, or null (pure, for tests). */
export function shortcutFor(
  event: Pick<KeyboardEvent, "key" | "ctrlKey" | "metaKey" | "shiftKey" | "altKey">,
  inField: boolean,
): "new-chat" | "focus-input" | "search" | "stop" | null {
  const mod = event.ctrlKey || event.metaKey;
  const key = event.key.toLowerCase();
  if (mod && event.shiftKey && key === "o") return "new-chat";
  if (mod && !event.shiftKey && key === "k") return "search";
  if (event.key === "Escape" && event.shiftKey) return "focus-input";
  if (event.key === "/" && !mod && !event.altKey && !inField) return "focus-input";
  if (event.key === "Escape" && !inField) return "stop";
  return null;
}

export function useShortcuts(actions: ShortcutActions): void {
  const latest = useRef(actions);
  latest.current = actions;
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      const action = shortcutFor(event, typing(event.target));
      if (action === null) return;
      event.preventDefault();
      if (action === "new-chat") {
        latest.current.newChat();
        focus("composer-input");
      } else if (action === "focus-input") focus("composer-input");
      else if (action === "search") focus("conversation-search");
      else latest.current.stop();
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, []);
}
