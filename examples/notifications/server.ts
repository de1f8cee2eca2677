/**
 * Notifications: a topic pushed to browsers as server-sent events. Every event carries its offset as
 * `id:`, so a client that loses its connection reconnects with `Last-Event-ID` and the server resumes
 * right after it; a `: hb` comment every few seconds lets clients and proxies tell a quiet stream from
 * a dead one. The browser's own `EventSource` and pollkit's `Subscriber` read the same stream.
 *
 * Run it: `node --import tsx examples/notifications/server.ts`, open the printed URL, and watch a
 * notification arrive every two seconds; `POST /notify` with a text body sends one more.
 *
 * @module
 */
import { createServer } from 'node:http';
import { PollkitHandler, TopicRegistry, systemClock, type TimerHandle } from 'pollkit/server';
import { createNodeListener } from 'pollkit/node';
import { type ListenOptions, type Running, isMain, listen, pageRoute, readBody } from '../shared/serve.js';

/** The topic the notifications live in. */
export const TOPIC = 'notifications';

/** One notification. */
export interface Notification {
  readonly text: string;
  readonly level: 'info' | 'warning';
}

/** Options for {@link start}. */
export interface NotificationsOptions extends ListenOptions {
  /** How often a quiet stream gets a `: hb` comment, in milliseconds. Default `5000`. */
  readonly heartbeatMs?: number;
  /** The reconnect delay the stream asks `EventSource` for (`retry:`), in milliseconds. Default `1000`. */
  readonly retryMs?: number;
  /** Sends a notification this often, in milliseconds; `0` sends none on its own. Default `0`. */
  readonly tickMs?: number;
}

/** A running notifications server. */
export interface NotificationsServer extends Running {
  /** Publishes a notification; resolves with its offset. */
  notify(notification: Notification): Promise<number>;
  /** Cuts every open connection (the server keeps running), to show clients resuming. */
  dropConnections(): number;
}

/**
 * Starts the notifications server.
 *
 * @example
 * ```ts
 * const server = await start({ port: 0, heartbeatMs: 5000 });
 * await server.notify({ text: 'deploy finished', level: 'info' });
 * ```
 */
export async function start(options: NotificationsOptions = {}): Promise<NotificationsServer> {
  const topics = new TopicRegistry({ retention: { maxRecords: 10_000 } });
  const notifications = topics.topic<Notification>(TOPIC);
  const handler = new PollkitHandler({
    topics,
    heartbeatMs: options.heartbeatMs ?? 5000,
    sseRetryMs: options.retryMs ?? 1000,
  });
  const page = pageRoute(new URL('.', import.meta.url));
  const server = createServer(
    createNodeListener(handler, {
      onUnmatched: (req, res) => {
        void (async () => {
          if (req.method === 'POST' && req.url === '/notify') {
            const text = (await readBody(req, 4096)).toString('utf8').trim() || 'ping';
            const offset = await notifications.append({ text, level: 'info' });
            res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ offset }));
          } else if (!(await page(req, res))) {
            res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
          }
        })().catch((error: unknown) => {
          if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(String(error));
        });
      },
    }),
  );
  const listening = await listen(server, options);

  let timer: TimerHandle | undefined;
  let count = 0;
  const tick = (): void => {
    count++;
    void notifications.append({ text: `notification ${count}`, level: count % 5 === 0 ? 'warning' : 'info' });
    timer = systemClock.setTimeout(tick, options.tickMs ?? 0, { unref: true });
  };
  if ((options.tickMs ?? 0) > 0) timer = systemClock.setTimeout(tick, options.tickMs ?? 0, { unref: true });

  return {
    url: listening.url,
    notify: (notification) => notifications.append(notification),
    dropConnections: () => listening.dropConnections(),
    close: async () => {
      if (timer !== undefined) systemClock.clearTimeout(timer);
      await handler.close();
      await topics.close();
      await listening.close();
    },
  };
}

if (isMain(import.meta.url)) {
  const { url, close } = await start({ port: Number(process.env['PORT'] ?? 3000), tickMs: 2000 });
  console.log(`notifications: open ${url}`);
  process.once('SIGINT', () => void close().then(() => process.exit(0)));
}
