/**
 * One server, every framework: the same job registry and topic registry — so the same jobs, the same
 * topics, the same held requests — served at once by node:http, Express, Fastify, Koa and Hono, each
 * on its own port and each in a few lines. A job submitted through Express can be long-polled through
 * Koa; a record appended through Hono arrives at a consumer reading through Fastify.
 *
 * Run it: `node --import tsx examples/every-framework/server.ts`.
 *
 * @module
 */
import { createServer } from 'node:http';
import { getRequestListener } from '@hono/node-server';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import Koa from 'koa';
import { JobRegistry, PollkitHandler, TopicRegistry, sleep } from 'pollkit/server';
import { createNodeListener } from 'pollkit/node';
import { pollkitExpress } from 'pollkit/express';
import { pollkitFastify } from 'pollkit/fastify';
import { pollkitKoa } from 'pollkit/koa';
import { mountPollkit } from 'pollkit/hono';
import { type ListenOptions, isMain, listen } from '../shared/serve.js';

/** The frameworks this example mounts pollkit on. */
export const FRAMEWORKS = ['node', 'express', 'fastify', 'koa', 'hono'] as const;

/** One of {@link FRAMEWORKS}. */
export type Framework = (typeof FRAMEWORKS)[number];

/** Options for {@link start}. `port` is the first port; the others follow it (all `0` by default). */
export type EveryFrameworkOptions = ListenOptions;

/** The running servers. */
export interface EveryFrameworkServer {
  /** The node:http server's URL (the first one). */
  readonly url: string;
  /** Each framework's URL. */
  readonly urls: Readonly<Record<Framework, string>>;
  /** Stops every server, then the shared handler and registries. */
  close(): Promise<void>;
}

/**
 * Starts the same pollkit service on five stacks.
 *
 * @example
 * ```ts
 * const { urls, close } = await start();
 * console.log(urls.express, urls.hono);
 * ```
 */
export async function start(options: EveryFrameworkOptions = {}): Promise<EveryFrameworkServer> {
  // What is shared: one set of jobs and topics, one handler speaking the protocol.
  const jobs = new JobRegistry().define<{ text: string }, string>(
    'shout',
    async ({ input, signal, reportProgress }) => {
      reportProgress({ percent: 50, message: 'drawing breath' });
      await sleep(50, { signal });
      return `${input.text.toUpperCase()}!`;
    },
  );
  const topics = new TopicRegistry();
  const handler = new PollkitHandler({ jobs, topics, publicAppends: true, autoCreateTopics: true });
  const port = (index: number): ListenOptions => ({
    ...options,
    port: options.port === undefined || options.port === 0 ? 0 : options.port + index,
  });

  // node:http
  const node = await listen(createNodeListener(handler), port(0));

  // Express
  const expressApp = express();
  expressApp.use(pollkitExpress(handler));
  const onExpress = await listen(createServer(expressApp), port(1));

  // Fastify
  const fastify = Fastify();
  await fastify.register(pollkitFastify(handler));
  await fastify.listen({ port: port(2).port ?? 0, host: options.host ?? '127.0.0.1' });
  const fastifyUrl = `http://${options.host ?? '127.0.0.1'}:${(fastify.server.address() as { port: number }).port}/`;

  // Koa
  const koa = new Koa();
  koa.use(pollkitKoa(handler));
  const onKoa = await listen(createServer(koa.callback()), port(3));

  // Hono (on @hono/node-server)
  const hono = new Hono();
  mountPollkit(hono, handler);
  const onHono = await listen(getRequestListener(hono.fetch), port(4));

  return {
    url: node.url,
    urls: { node: node.url, express: onExpress.url, fastify: fastifyUrl, koa: onKoa.url, hono: onHono.url },
    close: async () => {
      await handler.close();
      await Promise.all([node.close(), onExpress.close(), fastify.close(), onKoa.close(), onHono.close()]);
      await jobs.close();
      await topics.close();
    },
  };
}

if (isMain(import.meta.url)) {
  const running = await start({ port: Number(process.env['PORT'] ?? 3000) });
  for (const [name, url] of Object.entries(running.urls)) console.log(`${name.padEnd(8)} ${url}pollkit/…`);
  process.once('SIGINT', () => void running.close().then(() => process.exit(0)));
}
