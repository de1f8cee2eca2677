/**
 * Writing a server-sent event stream to a Node response so that a client that stops reading costs a
 * bounded amount and is let go (internal to the Node-based adapters).
 *
 * The stream is pulled one event at a time and each event written as it comes, letting the socket
 * buffer up to `maxUnsentBytes` of them (bursts pass without a pause). Past that bound the writer
 * stops pulling — the log, not this process, keeps what the client has not read — and the client has
 * `slowReaderTimeoutMs` to drain its socket; one that does not is evicted: the response is destroyed,
 * which ends the stream's source and frees its held slot. The client reconnects with `Last-Event-ID`
 * and resumes where it really was, losing nothing. So a stalled reader holds at most the bound plus
 * one event in this process, and for at most the timeout. The ws adapter treats slow sockets the same
 * way (`highWaterMarkBytes`, `slowConsumerTimeoutMs`).
 *
 * @module
 */
import type { ServerResponse } from 'node:http';
import type { StreamLimits } from '../server/http/types.js';

export type { StreamLimits };

/** The handler's defaults, for a stream written without its handler's limits. */
export const DEFAULT_STREAM_LIMITS: StreamLimits = Object.freeze({
  maxUnsentBytes: 262_144,
  slowReaderTimeoutMs: 30_000,
});

/** A response that compression middleware wraps exposes `flush()`; calling it pushes each event out. */
interface Flushable {
  flush?: () => void;
}

/**
 * Writes `body` to `res` under `limits`; resolves when the stream ended, the client left or was
 * evicted, having called the iterator's `return()` in every case.
 *
 * @example
 * ```ts
 * await writeEventStream(res, events, signal, { maxUnsentBytes: 262_144, slowReaderTimeoutMs: 30_000 });
 * ```
 */
export async function writeEventStream(
  res: ServerResponse,
  body: AsyncIterable<string>,
  signal: AbortSignal | undefined,
  limits: StreamLimits,
): Promise<void> {
  const flush = (res as Flushable).flush;
  const iterator = body[Symbol.asyncIterator]();
  const stop = (): void => {
    void iterator.return?.();
  };
  signal?.addEventListener('abort', stop, { once: true });
  try {
    for (;;) {
      if (res.destroyed || signal?.aborted === true) return;
      if (res.writableNeedDrain && res.writableLength > limits.maxUnsentBytes) {
        const outcome = await drained(res, signal, limits.slowReaderTimeoutMs);
        if (outcome === 'gone') return;
        if (outcome === 'stalled') {
          // Destroying the response closes it, which aborts the held request and ends the source.
          res.destroy();
          return;
        }
        continue;
      }
      const { done, value } = await iterator.next();
      if (done === true || res.destroyed) break;
      res.write(value);
      if (typeof flush === 'function') flush.call(res);
    }
    if (!res.destroyed) res.end();
  } finally {
    signal?.removeEventListener('abort', stop);
    await iterator.return?.();
  }
}

/** Waits for the socket to drain; `'stalled'` when it does not within `timeoutMs` (0: no limit). */
function drained(
  res: ServerResponse,
  signal: AbortSignal | undefined,
  timeoutMs: number,
): Promise<'drained' | 'stalled' | 'gone'> {
  return new Promise((resolve) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const done = (outcome: 'drained' | 'stalled' | 'gone'): void => {
      res.off('drain', onDrain);
      res.off('close', onGone);
      signal?.removeEventListener('abort', onGone);
      if (timer !== undefined) clearTimeout(timer);
      resolve(outcome);
    };
    const onDrain = (): void => done('drained');
    const onGone = (): void => done('gone');
    res.on('drain', onDrain);
    res.on('close', onGone);
    signal?.addEventListener('abort', onGone, { once: true });
    if (timeoutMs > 0) {
      timer = setTimeout(() => done('stalled'), timeoutMs);
      timer.unref?.();
    }
  });
}
