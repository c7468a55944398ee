import { describe, expect, it } from "vitest";
import { shortcutFor } from "./useShortcuts";

const key = (k: string, mods: Partial<Record<"ctrlKey" | "metaKey" | "shiftKey" | "altKey", boolean>> = {}) => ({
  key: k,
  ctrlKey: false,
  metaKey: false,
  shiftKey: false,
  altKey: false,
  ...mods,
});

describe("keyboard shortcuts", () => {
  it("map keys to actions", () => {
    expect(shortcutFor(key("O", { ctrlKey: true, shiftKey: true }), true)).toBe("new-chat");
    expect(shortcutFor(key("o", { metaKey: true, shiftKey: true }), false)).toBe("new-chat");
    expect(shortcutFor(key("k", { ctrlKey: true }), true)).toBe("search");
    expect(shortcutFor(key("Escape", { shiftKey: true }), true)).toBe("focus-input");
    expect(shortcutFor(key("/"), false)).toBe("focus-input");
    expect(shortcutFor(key("Escape"), false)).toBe("stop");
  });

  it("leave typing alone", () => {
    expect(shortcutFor(key("/"), true)).toBeNull();
    expect(shortcutFor(key("Escape"), true)).toBeNull();
    expect(shortcutFor(key("a"), false)).toBeNull();
  });
});
