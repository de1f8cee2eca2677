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
import { JobRegistry } from '../../../src/server/jobs/job-registry.js';
import { TopicRegistry } from '../../../src/server/topics/topic-registry.js';

/** What a scenario builds. */
export interface Scenario {
  readonly server: Server;
  readonly stats?: () => Record<string, unknown>;
  readonly close?: () => Promise<void>;
}

function registries() {
  const jobs = new JobRegistry().define('echo', ({ input }) => input);
  const topics = new TopicRegistry();
  return { jobs, topics };
}

export const scenarios: Record<string, () => Promise<Scenario>> = {
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
