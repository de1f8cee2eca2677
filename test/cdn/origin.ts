/**
 * A pollkit origin on a free port for the shared-cache suite: the real handler behind `pollkit/node`,
 * with a log of every request that reached it (what nginx did not answer from its cache).
 *
 * @module
 */
import { createServer } from 'node:http';
import { createNodeListener } from '../../src/adapters/node.js';
import type { PollkitCaller } from '../../src/server/http/caller.js';
import { PollkitHandler, type PollkitHandlerOptions } from '../../src/server/http/handler.js';
import type { PollkitRequest } from '../../src/server/http/types.js';
import { TopicRegistry } from '../../src/server/topics/topic-registry.js';
import { listen, type TestServer } from '../helpers/http-server.js';

/** One request the origin saw. */
export interface OriginRequest {
  readonly url: string;
  /** `performance.now()` when it arrived. */
  readonly at: number;
  /** Who sent it, as the `authorize` hook read it. */
  readonly user: string | undefined;
}

/** A running origin. */
export interface Origin {
  /** `host:port`, for the nginx upstream. */
  readonly address: string;
  readonly server: TestServer;
  readonly handler: PollkitHandler;
  readonly topics: TopicRegistry;
  /** Every GET of topic records that reached the origin, in arrival order. */
  readonly fetches: OriginRequest[];
  close(): Promise<void>;
}

/** The credentials of a request: the `user` cookie, or a bearer token naming the user. */
export function userOf(headers: PollkitRequest['headers']): string | undefined {
  const record = headers as Record<string, string | undefined>;
  const bearer = /^Bearer (\w+)$/.exec(record['authorization'] ?? '');
  if (bearer !== null) return bearer[1];
  return /(?:^|;\s*)user=(\w+)/.exec(record['cookie'] ?? '')?.[1];
}

/**
 * Topics `public.*` are public; `private.<user>` are readable by that user only. Anonymous callers are
 * keyed by nothing, so the per-caller limit does not count every client behind nginx as one.
 */
export function authorize(request: PollkitRequest): PollkitCaller {
  const user = userOf(request.headers);
  return {
    id: user ?? 'anonymous',
    canReadTopic: (topic) => topic.startsWith('public.') || topic === `private.${user}`,
    isPublicTopic: (topic) => topic.startsWith('public.'),
  };
}

/** Starts an origin with its own topic registry. */
export async function startOrigin(options: Omit<PollkitHandlerOptions, 'topics'> = {}): Promise<Origin> {
  const topics = new TopicRegistry();
  const handler = new PollkitHandler({ topics, authorize, maxHeldPerCaller: 100_000, ...options });
  const listener = createNodeListener(handler);
  const fetches: OriginRequest[] = [];
  const server = await listen(
    createServer((req, res) => {
      if (req.method === 'GET' && req.url?.includes('/records') === true) {
        fetches.push({ url: req.url, at: performance.now(), user: userOf(req.headers) });
      }
      listener(req, res);
    }),
  );
  return {
    address: server.url.slice('http://'.length),
    server,
    handler,
    topics,
    fetches,
    async close() {
      await handler.close();
      await server.close();
      await topics.close();
    },
  };
}
