// The code highlighter, loaded on first use: highlight.js's common languages
// (~40) are a separate chunk, so the first page does not carry them.

import type { HLJSApi } from "highlight.js";

let loading: Promise<HLJSApi> | null = null;

/** highlight.js, fetched once, when the first code block is shown. */
export function loadHighlighter(): Promise<HLJSApi> {
  loading ??= import("highlight.js/lib/common").then((module) => module.default);
  return loading;
}

/** Highlighted HTML of `code` (highlight.js escapes the text), in `language` if it knows it. */
export function highlightHtml(hljs: HLJSApi, code: string, language: string | null): string {
  if (language && hljs.getLanguage(language)) return hljs.highlight(code, { language, ignoreIllegals: true }).value;
  return hljs.highlightAuto(code).value;
}
