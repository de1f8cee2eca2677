/**
 * The servers `child-server.ts` can start, by name. Each is a real deployment shape with one thing
 * about it that used to crash or grow: a context hook that throws, a body parser without a depth limit.
 *
 * @module
 */
import { type Server, createServer } from 'node:http';
import express from 'express';
import { pollkitExpress } from '../../../src/adapters/express.js';
import { createNodeListener } from '../../../src/adapters/node.js';
import { PollkitHandler } from '../../../src/server/http/handler.js';
import { getHeader } from '../../../src/server/http/types.js';
import { JobRegistry } from '../../../src/server/jobs/job-registry.js';
import { TopicRegistry } from '../../../src/server/topics/topic-registry.js';

/** What a scenario builds. */
export interface Scenario {
  readonly server: Server;
  readonly stats?: () => Record<string, unknown>;
  readonly close?: () => Promise<void>;
  /** What the parent may ask the child to do over IPC, by name. */
  readonly commands?: Record<string, (...args: unknown[]) => Promise<unknown>>;
}

function registries() {
  const jobs = new JobRegistry().define('echo', ({ input }) => input);
  const topics = new TopicRegistry();
  return { jobs, topics };
}

export const scenarios: Record<string, () => Promise<Scenario>> = {
  /**
   * The abuse run's server: Express with express.json() in front, every pollkit option at its
   * default, tenants named by `x-tenant` (each its own owner, allowed to append to any topic).
   */
  async abuse() {
    const jobs = new JobRegistry().define('echo', ({ input }) => input);
    const topics = new TopicRegistry();
    const handler = new PollkitHandler({
      jobs,
      topics,
      authorize: (request) => {
        const tenant = getHeader(request.headers, 'x-tenant');
        return tenant === undefined ? undefined : { id: tenant, owner: tenant, canAppendTopic: () => true };
      },
    });
    const app = express();
    app.use(express.json({ limit: '1mb' }));
    app.use(pollkitExpress(handler));
    return {
      server: createServer(app),
      stats: () => ({ held: handler.heldRequests, topics: topics.names().length, ...jobs.stats() }),
      commands: {
        /** Appends `count` records of `bytes` characters through the API, yielding to I/O as it goes. */
        async append(name, count, bytes) {
          const topic = topics.topic(String(name));
          const value = 'x'.repeat(Number(bytes));
          for (let n = 0; n < Number(count); n++) {
            await topic.append(value);
            if (n % 200 === 199) await new Promise((resolve) => setImmediate(resolve));
          }
          return Number(count);
        },
      },
      close: async () => {
        await handler.close();
        await jobs.close();
        await topics.close();
      },
    };
  },

  /** pollkit/node whose `context` hook throws on every request. */
  async 'node-context-throws'() {
    const { jobs, topics } = registries();
    const handler = new PollkitHandler({ jobs, topics });
    const listener = createNodeListener(handler, {
      context: () => {
        throw new Error('the session store is down');
      },
    });
    return { server: createServer(listener), close: () => jobs.close() };
  },

  /** Express with express.json() (no depth limit) in front of pollkit. */
  async 'express-json'() {
    const { jobs, topics } = registries();
    const app = express();
    app.use(express.json({ limit: '1mb' }));
    app.use(pollkitExpress(new PollkitHandler({ jobs, topics, publicAppends: true, autoCreateTopics: true })));
    return { server: createServer(app), close: () => jobs.close() };
  },
};
