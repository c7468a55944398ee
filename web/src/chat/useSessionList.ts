// The sidebar's sessions: the first page, older pages on request, rename and
// delete, and a refresh coalesced after bursts of activity.

import { useCallback, useEffect, useRef, useState } from "react";
import { type SessionSummary, deleteSession, fetchSessionPage, renameSession } from "./api";

/** Coalesces bursts of activity (a message and its answer) into one list refresh. */
const SESSIONS_REFRESH_DELAY_MS = 400;

export interface SessionList {
  sessions: SessionSummary[];
  hasMore: boolean;
  error: string | null;
  refreshSoon(): void;
  loadMore(): void;
  rename(id: string, title: string): Promise<void>;
  remove(id: string): Promise<void>;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function useSessionList(userId: string): SessionList {
  const [sessions, setSessions] = useState<SessionSummary[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  // How many sessions the user has paged in: a refresh keeps showing as many.
  const shown = useRef(0);

  const load = useCallback(async () => {
    try {
      let page = await fetchSessionPage(userId);
      let list = page.sessions;
      while (page.next !== null && list.length < shown.current) {
        page = await fetchSessionPage(userId, page.next);
        list = [...list, ...page.sessions];
      }
      setSessions(list);
      setNext(page.next);
      setError(null);
    } catch (failure) {
      setError(message(failure));
    }
  }, [userId]);

  const refreshSoon = useCallback(() => {
    if (timer.current !== null) clearTimeout(timer.current);
    timer.current = setTimeout(() => {
      timer.current = null;
      void load();
    }, SESSIONS_REFRESH_DELAY_MS);
  }, [load]);

  useEffect(() => {
    void load();
    return () => {
      if (timer.current !== null) clearTimeout(timer.current);
    };
  }, [load]);

  const loadMore = useCallback(() => {
    if (next === null) return;
    fetchSessionPage(userId, next).then(
      (page) => {
        setSessions((list) => {
          const known = new Set(list.map((s) => s.id));
          const merged = [...list, ...page.sessions.filter((s) => !known.has(s.id))];
          shown.current = merged.length;
          return merged;
        });
        setNext(page.next);
      },
      (failure: unknown) => setError(message(failure)),
    );
  }, [userId, next]);

  const rename = useCallback(
    async (id: string, title: string) => {
      const renamed = await renameSession(userId, id, title);
      setSessions((list) => list.map((s) => (s.id === id ? { ...s, title: renamed.title } : s)));
    },
    [userId],
  );

  const remove = useCallback(
    async (id: string) => {
      await deleteSession(userId, id);
      setSessions((list) => list.filter((s) => s.id !== id));
    },
    [userId],
  );

  return { sessions, hasMore: next !== null, error, refreshSoon, loadMore, rename, remove };
}
