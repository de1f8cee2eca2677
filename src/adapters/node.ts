/**
 * `pollkit/node`: the protocol handler as a `(req, res)` listener for `node:http`, `node:https` and
 * anything built on them (Express, Connect, Polka, Next.js custom servers). It only translates: the
 * request's own header record is passed through uncopied, a closed response aborts the held request,
 * and each server-sent event is written as soon as it exists.
 *
 * @example
 * ```ts
 * import { createServer } from 'node:http';
 * import { JobRegistry, PollkitHandler } from 'pollkit/server';
 * import { createNodeListener } from 'pollkit/node';
 *
 * const handler = new PollkitHandler({ jobs: new JobRegistry() });
 * createServer(createNodeListener(handler)).listen(8080);
 * ```
 *
 * @module pollkit/node
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AbortedError } from '../core/errors.js';
import type { PollkitHandler } from '../server/handler.js';
import {
  type BodyReader,
  type PollkitRequest,
  type PollkitResponse,
  isStreamBody,
  payloadTooLarge,
} from '../server/http-types.js';
import { errorToProblem, problemResponse, makeProblem } from '../server/problems.js';

/** Options for {@link createNodeListener}. */
export interface NodeListenerOptions<Context> {
  /** Builds the `context` passed to the handler's `authorize` hook. Default: none. */
  readonly context?: (req: IncomingMessage, res: ServerResponse) => Context;
  /**
   * Answers requests outside the handler's prefix when the listener is not used as middleware (no
   * `next`). Default: a 404 problem.
   */
  readonly onUnmatched?: (req: IncomingMessage, res: ServerResponse) => void;
}

/** A Node request listener that also works as Connect/Express middleware. */
export type NodeListener = (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void) => void;

/**
 * Wraps a handler as a Node request listener. Requests outside the handler's prefix go to `next` when
 * called as middleware, otherwise to `onUnmatched`.
 *
 * @example
 * ```ts
 * import express from 'express';
 * import { PollkitHandler, TopicRegistry } from 'pollkit/server';
 * import { createNodeListener } from 'pollkit/node';
 *
 * const app = express();
 * app.use(createNodeListener(new PollkitHandler({ topics: new TopicRegistry() })));
 * ```
 */
export function createNodeListener<Context = unknown>(
  handler: PollkitHandler<Context>,
  options: NodeListenerOptions<Context> = {},
): NodeListener {
  return (req, res, next) => {
    void serve(handler, options, req, res, next);
  };
}

async function serve<Context>(
  handler: PollkitHandler<Context>,
  options: NodeListenerOptions<Context>,
  req: IncomingMessage,
  res: ServerResponse,
  next: ((error?: unknown) => void) | undefined,
): Promise<void> {
  const controller = new AbortController();
  const onClose = (): void => {
    // 'close' also fires after a normal end; only an unfinished response means the client left.
    if (!res.writableFinished) controller.abort(new AbortedError('The client disconnected'));
  };
  res.once('close', onClose);
  try {
    const request: PollkitRequest<Context> = {
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      headers: req.headers,
      readBody: bodyReader(req),
      signal: controller.signal,
      secure: (req.socket as { encrypted?: boolean }).encrypted === true,
      ...(req.socket.remoteAddress === undefined ? {} : { remoteAddress: req.socket.remoteAddress }),
      ...(options.context === undefined ? {} : { context: options.context(req, res) }),
    };
    const response = await handler.handle(request);
    if (response === null) {
      if (next !== undefined) next();
      else if (options.onUnmatched !== undefined) options.onUnmatched(req, res);
      else await write(res, problemResponse(makeProblem('not-found', 'Nothing is served here.')), controller.signal);
      return;
    }
    await write(res, response, controller.signal);
  } catch (error) {
    if (!res.headersSent) {
      await write(res, problemResponse(errorToProblem(error).problem), controller.signal).catch(() => {});
    } else {
      res.destroy(error instanceof Error ? error : undefined);
    }
  } finally {
    res.off('close', onClose);
  }
}

async function write(res: ServerResponse, response: PollkitResponse, signal: AbortSignal): Promise<void> {
  const { body } = response;
  if (signal.aborted || res.destroyed) {
    if (isStreamBody(body)) await body[Symbol.asyncIterator]().return?.();
    return;
  }
  // After a 413 the rest of the body was never read; closing is cheaper than draining it. HTTP/2
  // forbids the header and has no such problem.
  const close = response.status === 413 && res.req.httpVersionMajor === 1 ? { connection: 'close' } : {};
  res.writeHead(response.status, { ...response.headers, ...close });
  if (!isStreamBody(body)) {
    res.end(body ?? undefined);
    return;
  }
  // Send the headers now: an EventSource reports "open" only once it sees them.
  res.flushHeaders();
  const iterator = body[Symbol.asyncIterator]();
  const stop = (): void => {
    void iterator.return?.();
  };
  signal.addEventListener('abort', stop, { once: true });
  try {
    for (;;) {
      const { done, value } = await iterator.next();
      if (done === true || res.destroyed) break;
      // Node's http writes each chunk straight to the socket; waiting for 'drain' keeps a slow reader
      // from growing the socket buffer without bound.
      if (!res.write(value)) await drained(res, signal);
    }
    if (!res.destroyed) res.end();
  } finally {
    signal.removeEventListener('abort', stop);
    await iterator.return?.();
  }
}

function drained(res: ServerResponse, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
    signal.addEventListener('abort', done, { once: true });
  });
}

function bodyReader(req: IncomingMessage): BodyReader {
  return (limitBytes) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limitBytes) return Promise.reject(payloadTooLarge(limitBytes));
    return new Promise<string>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const cleanup = (): void => {
        req.off('data', onData);
        req.off('end', onEnd);
        req.off('error', onError);
        req.off('close', onAborted);
      };
      const onData = (chunk: Buffer): void => {
        size += chunk.length;
        if (size > limitBytes) {
          cleanup();
          // Stop reading: the 413 goes out with Connection: close, so the rest is never needed.
          req.pause();
          reject(payloadTooLarge(limitBytes));
          return;
        }
        chunks.push(chunk);
      };
      const onEnd = (): void => {
        cleanup();
        resolve(Buffer.concat(chunks).toString('utf8'));
      };
      const onError = (error: Error): void => {
        cleanup();
        reject(new AbortedError('The request body could not be read', { cause: error }));
      };
      const onAborted = (): void => {
        if (req.complete) return;
        cleanup();
        reject(new AbortedError('The client disconnected while sending the body'));
      };
      req.on('data', onData);
      req.on('end', onEnd);
      req.on('error', onError);
      req.on('close', onAborted);
    });
  };
}
