/**
 * One pollkit server process for the multi-process Redis tests: the node adapter over a JobRegistry
 * and a TopicRegistry whose stores are in Redis, listening on a free port. The parent drives the parts
 * HTTP does not expose (external workers, appends) over the IPC channel.
 *
 * Run as `node --import tsx test/redis/helpers/server-process.ts` with REDIS_URL, KEY_PREFIX and NAME set.
 *
 * @module
 */
import { createServer } from 'node:http';
import { Redis } from 'ioredis';
import { RedisChangeFeed, RedisJobStore, RedisTopicStore } from '../../../src/redis/index.js';
import { createNodeListener } from '../../../src/adapters/node.js';
import { PollkitHandler } from '../../../src/server/http/handler.js';
import { JobRegistry } from '../../../src/server/jobs/job-registry.js';
import { DelayedOperationPurgatory } from '../../../src/server/purgatory/purgatory.js';
import { TopicRegistry } from '../../../src/server/topics/topic-registry.js';

/** A request from the test process. */
export interface Command {
  readonly seq: number;
  readonly cmd: 'create' | 'start' | 'succeed' | 'append' | 'stats' | 'close';
  readonly args: readonly unknown[];
}

/** The answer to a {@link Command}. */
export type Reply =
  | { readonly seq: number; readonly ok: true; readonly value: unknown }
  | { readonly seq: number; readonly ok: false; readonly code: string; readonly message: string };

const url = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6399';
const keyPrefix = process.env['KEY_PREFIX'] ?? 'pollkit:';
const name = process.env['NAME'] ?? 'server';

const redis = new Redis(url, { connectionName: `pollkit-${name}`, maxRetriesPerRequest: 1 });
redis.on('error', () => undefined);
const feed = new RedisChangeFeed({ redis, keyPrefix });
const jobStore = new RedisJobStore({ redis, feed, keyPrefix, commandTimeoutMs: 1000 });
const topicStore = new RedisTopicStore({ redis, feed, keyPrefix, commandTimeoutMs: 1000 });
// One purgatory for both registries, so the parent can count every request this process holds.
const purgatory = new DelayedOperationPurgatory({ name });
const leaseMs = process.env['LEASE_MS'] === undefined ? undefined : Number(process.env['LEASE_MS']);
const jobs = new JobRegistry({ store: jobStore, purgatory, ...(leaseMs === undefined ? {} : { leaseMs }) });
const topics = new TopicRegistry({ store: topicStore, purgatory });
// Finishes at once, so a submit through this process is followed by a cross-process wake elsewhere.
jobs.define('echo', ({ input }) => input);
// Runs until the process dies (in process A) or at once (elsewhere): what a lost worker looks like.
const hangHere = (): boolean => name === 'A';
jobs.define('hang', ({ input }) => (hangHere() ? new Promise(() => {}) : `${String(input)} done by ${name}`));
jobs.define('retried', ({ input }) => (hangHere() ? new Promise(() => {}) : `${String(input)} done by ${name}`), {
  attempts: 2,
});
const handler = new PollkitHandler({
  jobs,
  topics,
  publicAppends: true,
  autoCreateTopics: true,
  waitJitter: 0,
  maxHeldRequests: 100_000,
  maxHeldPerCaller: 100_000,
});
const server = createServer(createNodeListener(handler));

async function run(command: Command): Promise<unknown> {
  const [a, b] = command.args;
  switch (command.cmd) {
    case 'create':
      return await jobs.create(String(a), b);
    case 'start':
      return await jobs.start(String(a));
    case 'succeed':
      return await jobs.succeed(String(a), b);
    case 'append':
      return await topics.topic(String(a)).append(b);
    case 'stats':
      return {
        held: purgatory.numDelayed(),
        subscribed: feed.subscribed,
        subscriptions: feed.subscriptions,
        connected: feed.subscribed && redis.status === 'ready',
      };
    case 'close':
      server.closeAllConnections();
      server.close();
      await jobs.close();
      await topics.close();
      purgatory.shutdown();
      await feed.close();
      redis.disconnect();
      return true;
  }
}

process.on('message', (command: Command) => {
  run(command).then(
    (value) => process.send?.({ seq: command.seq, ok: true, value } satisfies Reply),
    (error: { code?: string; message?: string }) =>
      process.send?.({
        seq: command.seq,
        ok: false,
        code: String(error.code ?? 'error'),
        message: String(error.message),
      } satisfies Reply),
  );
});

await feed.ready(10_000);
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.send?.({
    seq: 0,
    ok: true,
    value: { port: typeof address === 'object' && address !== null ? address.port : 0 },
  });
});
