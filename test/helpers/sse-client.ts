/**
 * A minimal server-sent events reader over `fetch` for tests that need to see the raw stream
 * (`retry:`, heartbeat comments, event names and ids), parsed by `eventsource-parser`.
 */
import { type EventSourceMessage, createParser } from 'eventsource-parser';

/** What a test has seen on one stream so far. */
export interface SseCapture {
  readonly status: number;
  readonly headers: Headers;
  readonly events: EventSourceMessage[];
  readonly comments: string[];
  readonly retries: number[];
  /** Resolves when the server ends the stream (or the client aborts). */
  readonly ended: Promise<void>;
  /** Resolves once at least `count` events arrived; rejects if the stream ends first. */
  waitForEvents(count: number): Promise<void>;
  /** Resolves once at least `count` comments arrived. */
  waitForComments(count: number): Promise<void>;
  /** Hangs up. */
  abort(): void;
}

/** Opens an SSE stream with `fetch` and starts collecting it. */
export async function openSse(url: string, headers: Record<string, string> = {}): Promise<SseCapture> {
  const controller = new AbortController();
  const response = await fetch(url, {
    headers: { accept: 'text/event-stream', ...headers },
    signal: controller.signal,
  });
  const events: EventSourceMessage[] = [];
  const comments: string[] = [];
  const retries: number[] = [];
  const listeners = new Set<() => void>();
  const notify = (): void => {
    for (const listener of [...listeners]) listener();
  };
  const parser = createParser({
    onEvent: (event) => {
      events.push(event);
      notify();
    },
    onComment: (comment) => {
      comments.push(comment);
      notify();
    },
    onRetry: (retry) => retries.push(retry),
  });
  let done = false;
  const ended = (async () => {
    if (response.body === null) return;
    const decoder = new TextDecoder();
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        parser.feed(decoder.decode(chunk, { stream: true }));
      }
    } catch {
      // aborted by the test
    } finally {
      done = true;
      notify();
    }
  })();
  const waitUntil = (condition: () => boolean, what: string): Promise<void> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        if (condition()) {
          listeners.delete(check);
          resolve();
        } else if (done) {
          listeners.delete(check);
          reject(new Error(`the stream ended before ${what}`));
        }
      };
      listeners.add(check);
      check();
    });
  return {
    status: response.status,
    headers: response.headers,
    events,
    comments,
    retries,
    ended,
    waitForEvents: (count) => waitUntil(() => events.length >= count, `${count} events`),
    waitForComments: (count) => waitUntil(() => comments.length >= count, `${count} comments`),
    abort: () => controller.abort(),
  };
}
