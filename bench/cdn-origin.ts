/**
 * The origin of `bench/cdn.ts`, run as a forked child so its CPU time is its own: a pollkit handler
 * behind `pollkit/node` serving one public topic, appending on command (each record stamped with the
 * wall time of its append) and reporting its CPU time, the requests that reached it and how many it
 * held, sampled every 20 ms.
 *
 * @module
 */
import { createServer } from 'node:http';
import { createNodeListener } from '../src/adapters/node.js';
import { PollkitHandler } from '../src/server/http/handler.js';
import { TopicRegistry } from '../src/server/topics/topic-registry.js';

/** Wall time in milliseconds, comparable across processes on one host. */
export const absoluteNow = (): number => performance.timeOrigin + performance.now();

/** A command from the orchestrator. */
export type OriginCommand =
  | { readonly id: number; readonly cmd: 'start'; readonly maxWaitSeconds: number }
  | { readonly id: number; readonly cmd: 'append'; readonly count: number }
  | { readonly id: number; readonly cmd: 'measure' }
  | { readonly id: number; readonly cmd: 'stats' }
  | { readonly id: number; readonly cmd: 'exit' };

export const TOPIC = 'public.scores';

const topics = new TopicRegistry({ maxLimit: 1000 });
let handler: PollkitHandler | undefined;
let fetches = 0;
let sampler: NodeJS.Timeout | undefined;
let heldMax = 0;
let heldSum = 0;
let heldSamples = 0;

async function start(maxWaitSeconds: number): Promise<Record<string, unknown>> {
  handler = new PollkitHandler({
    topics,
    maxWaitSeconds,
    // Everyone may read everything; the one topic is public. Direct, every client is one socket of
    // 127.0.0.1, so the limits must let all of them be held.
    authorize: () => ({ id: 'bench', isPublicTopic: () => true }),
    maxHeldRequests: 30_000,
    maxHeldPerCaller: 30_000,
  });
  const listener = createNodeListener(handler);
  const server = createServer((req, res) => {
    if (req.method === 'GET') fetches += 1;
    listener(req, res);
  });
  server.keepAliveTimeout = 120_000;
  server.maxRequestsPerSocket = 0;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', 4096, resolve));
  const address = server.address();
  await topics.topic(TOPIC).append({ t: absoluteNow() });
  return { port: typeof address === 'object' && address !== null ? address.port : 0 };
}

async function run(command: OriginCommand): Promise<Record<string, unknown>> {
  switch (command.cmd) {
    case 'start':
      return start(command.maxWaitSeconds);
    case 'append': {
      const topic = topics.topic(TOPIC);
      let offset = 0;
      for (let i = 0; i < command.count; i++) offset = await topic.append({ t: absoluteNow() });
      return { offset };
    }
    case 'measure':
      // Starts (or restarts) the window: held requests sampled from now on.
      heldMax = 0;
      heldSum = 0;
      heldSamples = 0;
      if (sampler !== undefined) clearInterval(sampler);
      sampler = setInterval(() => {
        const held = handler?.heldRequests ?? 0;
        heldMax = Math.max(heldMax, held);
        heldSum += held;
        heldSamples += 1;
      }, 20);
      return {};
    case 'stats': {
      const cpu = process.cpuUsage();
      return {
        cpuMicros: cpu.user + cpu.system,
        fetches,
        held: handler?.heldRequests ?? 0,
        heldMax,
        heldMean: heldSamples === 0 ? 0 : heldSum / heldSamples,
      };
    }
    case 'exit':
      if (sampler !== undefined) clearInterval(sampler);
      setImmediate(() => process.exit(0));
      return {};
  }
}

process.on('message', (message: OriginCommand) => {
  run(message).then(
    (result) => process.send?.({ id: message.id, ok: true, ...result }),
    (error: unknown) => process.send?.({ id: message.id, ok: false, error: String(error) }),
  );
});
