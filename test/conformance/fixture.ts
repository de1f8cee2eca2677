/**
 * One pollkit server for a conformance test: real registries sharing one purgatory (so a test can
 * check that nothing is left waiting), a handler, and a real HTTP server started by the adapter under
 * test. Job types:
 * - `echo` returns its input;
 * - `hold` runs until the test calls `release(id, result)` (or the job is canceled);
 * - `number` accepts only a number as input (anything else is `invalid-input`).
 */
import { onTestFinished } from 'vitest';
import { type Clock, systemClock } from '../../src/core/clock.js';
import type { PollkitCaller } from '../../src/server/http/caller.js';
import { PollkitHandler, type PollkitHandlerOptions } from '../../src/server/http/handler.js';
import { JobRegistry } from '../../src/server/jobs/job-registry.js';
import { DelayedOperationPurgatory } from '../../src/server/purgatory/purgatory.js';
import { TopicRegistry } from '../../src/server/topics/topic-registry.js';
import type { StartServer, TestServer } from '../helpers/http-server.js';

/** A running server and its parts. */
export interface Fixture {
  readonly server: TestServer;
  /** Server URL plus the prefix, e.g. `http://127.0.0.1:5123/pollkit`. */
  readonly base: string;
  readonly handler: PollkitHandler;
  readonly jobs: JobRegistry;
  readonly topics: TopicRegistry;
  readonly purgatory: DelayedOperationPurgatory;
  /** Completes a `hold` job with `result`. */
  release(id: string, result?: unknown): void;
  /** Resolves when every submitted job has run to its end. */
  drained(): Promise<void>;
}

/** Options for {@link startFixture}: handler options plus topic retention and the job backend. */
export interface FixtureOptions extends Omit<PollkitHandlerOptions, 'jobs' | 'topics'> {
  readonly maxRecords?: number;
  /** Where the fixture's jobs live and run. Default: in-process handlers on the in-memory store. */
  readonly backend?: JobBackend;
}

/** The registry of a fixture and what drives its jobs; see {@link JobBackend}. */
export interface FixtureJobs {
  /** Serves `echo`, `number`, `hold` (and `external` through `create`), as described at the top. */
  readonly jobs: JobRegistry;
  /** Completes a running `hold` job with `result`. */
  release(id: string, result: unknown): void;
  /** Resolves when every submitted job has run to its end. */
  drained(): Promise<void>;
  /** Stops whatever runs the jobs (the registry itself is closed by the fixture). */
  close(): Promise<void>;
}

/** Makes the jobs of one fixture on `purgatory`, so the conformance suite can run on any backend. */
export type JobBackend = (purgatory: DelayedOperationPurgatory) => Promise<FixtureJobs>;

/** The default backend: in-process handlers on the in-memory store. */
export const inProcessJobs: JobBackend = async (purgatory) => {
  const releases = new Map<string, (result: unknown) => void>();
  const jobs = new JobRegistry({ purgatory, progressIntervalMs: 0 })
    .define('echo', ({ input }) => input)
    .define('number', ({ input }) => input, {
      validate: (input) => {
        if (typeof input !== 'number') throw new TypeError('input must be a number');
        return input;
      },
    })
    .define(
      'hold',
      ({ id, signal, reportProgress }) =>
        new Promise((resolve, reject) => {
          reportProgress({ percent: 10, message: 'started' });
          releases.set(id, resolve);
          signal.addEventListener('abort', () => reject(signal.reason), { once: true });
        }),
    );
  return {
    jobs,
    release(id, result) {
      const resolve = releases.get(id);
      if (resolve === undefined) throw new Error(`job ${id} is not running`);
      releases.delete(id);
      resolve(result);
    },
    drained: () => jobs.onIdle(),
    close: async () => undefined,
  };
};

/** The system clock with jitter switched off, so `Preference-Applied` values are exact. */
export const noJitterClock: Clock = { ...systemClock, random: () => 0 };

/**
 * Callers for authorization tests: `Authorization: Bearer alice|bob|carol`; carol cannot see
 * topics starting with `secret.` and may append only to `chat.*`.
 */
export function bearerAuthorize(request: { headers: unknown }): PollkitCaller | undefined {
  const headers = request.headers as Record<string, string | undefined> | Headers;
  const value =
    typeof (headers as Headers).get === 'function'
      ? (headers as Headers).get('authorization')
      : (headers as Record<string, string | undefined>)['authorization'];
  const name = /^Bearer (\w+)$/.exec(value ?? '')?.[1];
  if (name === undefined) return undefined;
  if (name === 'carol') {
    return {
      id: name,
      owner: name,
      canReadTopic: (topic) => !topic.startsWith('secret.'),
      canAppendTopic: (topic) => topic.startsWith('chat.'),
    };
  }
  return { id: name, owner: name };
}

/** Starts registries, a handler and a server with `start`; everything is closed when the test ends. */
export async function startFixture(start: StartServer, options: FixtureOptions = {}): Promise<Fixture> {
  const { maxRecords, backend = inProcessJobs, ...handlerOptions } = options;
  const purgatory = new DelayedOperationPurgatory({ name: 'conformance' });
  const made = await backend(purgatory);
  const { jobs } = made;
  const topics = new TopicRegistry({
    purgatory,
    ...(maxRecords === undefined ? {} : { retention: { maxRecords } }),
  });
  const handler = new PollkitHandler({
    clock: noJitterClock,
    publicAppends: true,
    heartbeatMs: 60_000,
    sseRetryMs: 1000,
    ...handlerOptions,
    jobs,
    topics,
  });
  const server = await start(handler);
  onTestFinished(async () => {
    await handler.close();
    await server.close();
    await jobs.close();
    await topics.close();
    await made.close();
  });
  return {
    server,
    base: `${server.url}${handler.prefix}`,
    handler,
    jobs,
    topics,
    purgatory,
    release: (id, result = { ok: true }) => made.release(id, result),
    drained: () => made.drained(),
  };
}

/** A parsed response. */
export interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  /** The body parsed as JSON, or undefined when empty or not JSON. */
  readonly body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** Fetches and reads the whole response. */
export async function call(url: string, init: RequestInit = {}): Promise<Answer> {
  const response = await fetch(url, init);
  const text = await response.text();
  let body: unknown;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: response.status, headers: response.headers, text, body };
}

/** POSTs a JSON body. */
export function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  return call(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
}

/** Polls `condition` every 5 ms until it holds, failing after `timeoutMs`. */
export async function eventually(condition: () => boolean, timeoutMs = 3000, what = 'condition'): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * True when no operation waits in the purgatory (no watcher, nothing pending) and the handler holds
 * nothing. The timer may still hold the registry's own job timeouts, which are not held requests.
 */
export function idle(fixture: Fixture): boolean {
  const { pending, watched } = fixture.purgatory.metrics();
  return pending === 0 && watched === 0 && fixture.handler.heldRequests === 0;
}
