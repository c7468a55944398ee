import { type FormEvent, type KeyboardEvent, type MouseEvent, useEffect, useRef, useState } from "react";
import { type SearchResult, type SessionSummary, searchSessions } from "../chat/api";
import { groupByDate } from "../chat/dateGroups";
import { urlForSession } from "../chat/identity";

/** Wait this long after the last keystroke before searching. */
const SEARCH_DELAY_MS = 250;

interface Props {
  userId: string;
  sessions: SessionSummary[];
  /** More sessions wait on the server (a next page). */
  hasMore: boolean;
  currentId: string | null;
  error: string | null;
  onOpen(id: string): void;
  onRename(id: string, title: string): Promise<void>;
  onDelete(id: string): Promise<void>;
  onLoadMore(): void;
}

function relativeTime(iso: string | null): string {
  if (!iso) return "";
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return "";
  const seconds = Math.max(0, Math.round((Date.now() - then) / 1000));
  if (seconds < 60) return "just now";
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ago`;
  return new Date(then).toLocaleDateString();
}

function useSearch(userId: string, query: string) {
  const [results, setResults] = useState<SearchResult[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    const text = query.trim();
    if (!text) {
      setResults(null);
      setError(null);
      return;
    }
    const abort = new AbortController();
    const timer = setTimeout(() => {
      searchSessions(userId, text, abort.signal).then(
        (found) => {
          setResults(found);
          setError(null);
        },
        (failure: unknown) => {
          if (!abort.signal.aborted) setError(failure instanceof Error ? failure.message : String(failure));
        },
      );
    }, SEARCH_DELAY_MS);
    return () => {
      clearTimeout(timer);
      abort.abort();
    };
  }, [userId, query]);
  return { results, error };
}

interface ItemProps {
  session: SessionSummary;
  current: boolean;
  snippet?: string;
  onOpen(event: MouseEvent<HTMLAnchorElement>, id: string): void;
  onRename(id: string, title: string): Promise<void>;
  onDelete(id: string): Promise<void>;
}

function ConversationItem({ session, current, snippet, onOpen, onRename, onDelete }: ItemProps) {
  const [mode, setMode] = useState<"view" | "rename" | "confirm">("view");
  const [draft, setDraft] = useState("");
  const [problem, setProblem] = useState<string | null>(null);
  const title = session.title || "New chat";

  const startRename = () => {
    setDraft(title);
    setProblem(null);
    setMode("rename");
  };
  const saveRename = (event: FormEvent) => {
    event.preventDefault();
    const text = draft.trim();
    if (!text || text === title) {
      setMode("view");
      return;
    }
    onRename(session.id, text).then(
      () => setMode("view"),
      (failure: unknown) => setProblem(failure instanceof Error ? failure.message : String(failure)),
    );
  };
  const onRenameKey = (event: KeyboardEvent<HTMLInputElement>) => {
    if (event.key === "Escape") setMode("view");
  };
  const confirmDelete = () => {
    onDelete(session.id).catch((failure: unknown) =>
      setProblem(failure instanceof Error ? failure.message : String(failure)),
    );
  };

  return (
    <li className="conversation-item" data-item-session={session.id}>
      {mode === "rename" ? (
        <form className="rename-form" onSubmit={saveRename}>
          <input
            className="rename-input"
            aria-label="New title"
            value={draft}
            maxLength={200}
            // biome-ignore lint/a11y/noAutofocus: the user just asked to rename this one
            autoFocus
            onChange={(event) => setDraft(event.target.value)}
            onKeyDown={onRenameKey}
          />
          <button type="submit" className="small-button">
            Save
          </button>
          <button type="button" className="small-button" onClick={() => setMode("view")}>
            Cancel
          </button>
        </form>
      ) : (
        <div className="conversation-row">
          <a
            href={urlForSession(session.id)}
            className="conversation"
            aria-current={current ? "page" : undefined}
            data-session-id={session.id}
            onClick={(event) => onOpen(event, session.id)}
          >
            <span className="conversation-title">{title}</span>
            {snippet ? (
              <span className="conversation-snippet" data-testid="search-snippet">
                {snippet}
              </span>
            ) : (
              <span className="conversation-time">{relativeTime(session.updated_at)}</span>
            )}
          </a>
          <div className="conversation-actions">
            <button
              type="button"
              className="icon-button"
              aria-label={`Rename “${title}”`}
              title="Rename"
              onClick={startRename}
            >
              ✎
            </button>
            <button
              type="button"
              className="icon-button"
              aria-label={`Delete “${title}”`}
              title="Delete"
              onClick={() => setMode("confirm")}
            >
              🗑
            </button>
          </div>
        </div>
      )}
      {mode === "confirm" && (
        <div className="confirm-delete" role="alertdialog" aria-label={`Delete “${title}”?`}>
          <span>Delete this conversation for good?</span>
          <button type="button" className="small-button danger" onClick={confirmDelete}>
            Delete
          </button>
          {/* biome-ignore lint/a11y/noAutofocus: focus the safe choice of a confirmation */}
          <button type="button" className="small-button" autoFocus onClick={() => setMode("view")}>
            Keep
          </button>
        </div>
      )}
      {problem && (
        <p className="conversations-error" role="alert">
          {problem}
        </p>
      )}
    </li>
  );
}

/** The user's conversations: search, grouped by date (newest first), rename and delete in place. */
export function ConversationList(props: Props) {
  const { userId, sessions, hasMore, currentId, error, onOpen, onRename, onDelete, onLoadMore } = props;
  const [query, setQuery] = useState("");
  const search = useSearch(userId, query);
  const searchInput = useRef<HTMLInputElement>(null);
  const open = (event: MouseEvent<HTMLAnchorElement>, id: string) => {
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    onOpen(id);
  };
  const item = (session: SessionSummary, snippet?: string) => (
    <ConversationItem
      key={session.id}
      session={session}
      current={session.id === currentId}
      snippet={snippet}
      onOpen={open}
      onRename={onRename}
      onDelete={onDelete}
    />
  );
  const searching = query.trim() !== "";

  return (
    <nav className="conversations" aria-label="Conversation list">
      <div className="search-box" role="search">
        <input
          ref={searchInput}
          id="conversation-search"
          type="search"
          className="search-input"
          placeholder="Search conversations"
          aria-label="Search conversations"
          value={query}
          onChange={(event) => setQuery(event.target.value)}
          onKeyDown={(event) => {
            if (event.key === "Escape") setQuery("");
          }}
        />
      </div>
      {searching ? (
        <section aria-label="Search results" aria-live="polite">
          {search.error && <p className="conversations-error">Search failed: {search.error}</p>}
          {search.results?.length === 0 && <p className="conversations-empty">Nothing matches “{query.trim()}”.</p>}
          <ul data-testid="search-results">{search.results?.map((hit) => item(hit, hit.snippet))}</ul>
        </section>
      ) : (
        <>
          {error && <p className="conversations-error">Could not load conversations: {error}</p>}
          {sessions.length === 0 && !error && <p className="conversations-empty">No conversations yet.</p>}
          {groupByDate(sessions).map(({ group, items }) => (
            <section key={group} aria-labelledby={`group-${group.replace(/\W+/g, "-")}`}>
              <h2 className="conversation-group" id={`group-${group.replace(/\W+/g, "-")}`}>
                {group}
              </h2>
              <ul>{items.map((session) => item(session))}</ul>
            </section>
          ))}
          {hasMore && (
            <button type="button" className="load-more" onClick={onLoadMore}>
              Show older conversations
            </button>
          )}
        </>
      )}
    </nav>
  );
}
