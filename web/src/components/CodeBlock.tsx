import { useEffect, useState } from "react";
import { highlightHtml, loadHighlighter } from "../chat/highlight";
import { CopyButton } from "./CopyButton";

/** A fenced code block of an answer: its language, a copy button, highlighting once loaded. */
export function CodeBlock({ code, language }: { code: string; language: string | null }) {
  const [html, setHtml] = useState<string | null>(null);
  useEffect(() => {
    let current = true;
    loadHighlighter().then(
      (hljs) => {
        if (current) setHtml(highlightHtml(hljs, code, language));
      },
      () => undefined, // not loaded: the plain text stays
    );
    return () => {
      current = false;
    };
  }, [code, language]);
  return (
    <div className="code-block" data-testid="code-block">
      <div className="code-toolbar">
        <span className="code-language">{language ?? "code"}</span>
        <CopyButton text={code} what={language ? `${language} code` : "code"} />
      </div>
      {html === null ? (
        <pre>
          <code>{code}</code>
        </pre>
      ) : (
        <pre>
          {/* highlight.js escapes the code's text; only its own spans are markup */}
          <code className="hljs" data-highlighted="yes" dangerouslySetInnerHTML={{ __html: html }} />
        </pre>
      )}
    </div>
  );
}
