/**
 * A job followed to its end in one call: SSE where the server and runtime offer it, else long polling,
 * else short polling, chosen and switched by a {@link Subscriber} (so a transport that keeps failing
 * hands over, and the better one is tried again later). Ends at the job's terminal state, with the
 * result and progress typed by the caller's generics.
 *
 * @module
 */
import { Emitter } from '../core/emitter.js';
import { AbortedError, PollkitError } from '../core/errors.js';
import type { JobProgress, JobSnapshot } from '../core/protocol.js';
import { endpoints } from './endpoints.js';
import { type FetchFunction, JobClient } from './http.js';
import { jsonEqual } from './poller-support.js';
import { jobFailure } from './protocol-pollers.js';
import { chooseTransports } from './subscribe-topic.js';
import { type FallbackEvent, Subscriber, type SubscriberOptions } from './subscriber.js';
import { JobPollTransport } from './transports/job-poll.js';
import { SseTransport } from './transports/sse.js';
import type { Transport } from './transports/transport.js';

/** A job transport by name. */
export type JobTransportName = 'sse' | 'long-poll' | 'poll';

/** Options for {@link followJob}; the rest are the {@link Subscriber}'s. */
export interface FollowJobOptions extends Omit<SubscriberOptions<JobSnapshot>, 'transports' | 'cursor'> {
  /** Which transports, in order: `"auto"` (SSE, long poll, poll), one name, or a list. Default `"auto"`. */
  readonly transport?: 'auto' | JobTransportName | readonly JobTransportName[];
  /** Reject `result()` with `JobFailedError` / `JobCanceledError` for those outcomes. Default `true`. */
  readonly rejectOnFailure?: boolean;
  /** Headers for every request. Default none. */
  readonly headers?: Readonly<Record<string, string>> | (() => Readonly<Record<string, string>>);
  /** The `fetch` to call. Default `globalThis.fetch` at call time. */
  readonly fetch?: FetchFunction;
  /** Send cookies to another origin over SSE (`fetch`'s `credentials`). Default the browser's. */
  readonly credentials?: RequestCredentials;
  /** The server-side wait of a long poll, in milliseconds. Default `25000`. */
  readonly waitMs?: number;
}

/** How a {@link JobFollower} ended. */
export interface JobFollowEnd {
  /** `done` at the job's terminal state (whatever it was), `stopped`, or `failed` (no way to follow it). */
  readonly reason: 'done' | 'stopped' | 'failed';
  /** The error `result()` rejects with, if it rejects. */
  readonly error: unknown;
}

/** The events of a {@link JobFollower}. */
export interface JobFollowerEvents<Result, Data> {
  /** A new version of the job. */
  update: [job: JobSnapshot<Result, Data>];
  /** The job's progress changed. */
  progress: [progress: JobProgress<Data>, job: JobSnapshot<Result, Data>];
  /** The follower moved to another transport (see the Subscriber's `fallback`). */
  fallback: [event: FallbackEvent];
  /** The follower ended; emitted once. */
  end: [info: JobFollowEnd];
}

/**
 * Follows one job; made by {@link followJob}.
 *
 * @example
 * ```ts
 * import { followJob } from 'pollkit/client';
 * const follower = followJob<{ bytes: number }>('https://api.example.com/pollkit/jobs/7f3a');
 * follower.on('progress', (progress) => console.log(progress.percent));
 * const job = await follower.result();
 * console.log(job.result?.bytes, follower.transport);
 * ```
 */
export class JobFollower<Result = unknown, Data = unknown>
  extends Emitter<JobFollowerEvents<Result, Data>>
  implements AsyncIterable<JobSnapshot<Result, Data>>
{
  /** The subscriber underneath: its events tell about connections, reconnects and fallbacks. */
  readonly subscriber: Subscriber<JobSnapshot<Result, Data>>;
  readonly #client: JobClient;
  readonly #id: string;
  readonly #rejectOnFailure: boolean;
  readonly #result: Promise<JobSnapshot<Result, Data>>;
  #settle!: (job: JobSnapshot<Result, Data> | undefined, error: unknown, reason: JobFollowEnd['reason']) => void;
  #latest: JobSnapshot<Result, Data> | undefined;
  #ended = false;
  #lastClose = '';

  /** @internal */
  constructor(
    subscriber: Subscriber<JobSnapshot<Result, Data>>,
    client: JobClient,
    id: string,
    rejectOnFailure: boolean,
  ) {
    super();
    this.subscriber = subscriber;
    this.#client = client;
    this.#id = id;
    this.#rejectOnFailure = rejectOnFailure;
    this.#result = new Promise((resolve, reject) => {
      this.#settle = (job, error, reason) => {
        if (this.#ended) return;
        this.#ended = true;
        if (job !== undefined && error === undefined) resolve(job);
        else reject(error);
        subscriber.close();
        this.emit('end', { reason, error });
      };
    });
    // Nobody may be awaiting result(); its rejection must not surface as an unhandled one.
    this.#result.catch(() => {});
    subscriber.on('message', ({ data }) => this.#update(data));
    subscriber.on('fallback', (event) => this.emit('fallback', event));
    subscriber.on('close', ({ reason }) => (this.#lastClose = reason));
    subscriber.on('gone', (gone) => void this.#gone(gone.reason, gone.error));
  }

  /** The newest version seen, if any. */
  get latest(): JobSnapshot<Result, Data> | undefined {
    return this.#latest;
  }

  /** The transport in use (`sse`, `long-poll`, `poll`), once one has opened. */
  get transport(): string | undefined {
    return this.subscriber.transport;
  }

  /** Starts following (idempotent). */
  start(): this {
    this.subscriber.start(this.#latest === undefined ? undefined : String(this.#latest.version));
    return this;
  }

  /** Stops following; `result()` rejects with an `AbortedError` unless the job had already ended. */
  stop(): void {
    this.#settle(undefined, new AbortedError('The follower was stopped'), 'stopped');
  }

  /**
   * Starts following and resolves with the job at its terminal state; rejects with `JobFailedError`
   * or `JobCanceledError` (unless `rejectOnFailure: false`), the subscriber's error when no transport
   * can follow it, or the signal's reason.
   */
  result(): Promise<JobSnapshot<Result, Data>> {
    this.start();
    return this.#result;
  }

  /** Every new version until the job ends; leaving the loop early stops the follower. */
  async *[Symbol.asyncIterator](): AsyncIterator<JobSnapshot<Result, Data>> {
    const iterator = this.subscriber.messages();
    if (this.#latest !== undefined) yield this.#latest;
    this.start();
    try {
      for await (const { data } of { [Symbol.asyncIterator]: () => iterator }) yield data;
    } finally {
      if (!this.#ended) this.stop();
    }
  }

  #update(job: JobSnapshot<Result, Data>): void {
    const previous = this.#latest;
    if (previous !== undefined && job.version <= previous.version) return;
    this.#latest = job;
    this.emit('update', job);
    if (job.progress !== null && !jsonEqual(job.progress, previous?.progress ?? null)) {
      this.emit('progress', job.progress, job);
    }
    if (job.done) {
      const failure = this.#rejectOnFailure ? jobFailure(job) : undefined;
      this.#settle(job, failure, 'done');
    }
  }

  async #gone(reason: string, error: unknown): Promise<void> {
    if (this.#ended) return;
    if (reason === 'stopped' && this.#lastClose === 'http-204') {
      // The stream said the job is over, but its last event was lost in a cut: ask once.
      try {
        const answer = await this.#client.get<Result, Data>(this.#id);
        if (answer.changed) this.#update(answer.job);
        if (this.#ended) return;
      } catch (cause) {
        error = cause;
      }
    }
    this.#settle(
      undefined,
      error ?? new PollkitError(`Stopped following job ${this.#id} (${reason})`, 'subscriber-closed'),
      reason === 'aborted' ? 'stopped' : 'failed',
    );
  }
}

/**
 * Follows the job at `url` (the `Location` a submit returned) to its end: over SSE where available,
 * else long polling, else short polling, falling back and stepping back up as the Subscriber does.
 * Nothing is sent until `start()`, `result()` or iteration.
 *
 * Throws {@link InvalidArgumentError} for a URL that is not a job's or an unknown transport name.
 *
 * @example
 * ```ts
 * import { JobClient, followJob } from 'pollkit/client';
 *
 * const client = new JobClient({ baseUrl: 'https://api.example.com', prefix: '/pollkit' });
 * const { location } = await client.submit('video.transcode', { url: 'https://example.com/in.mp4' });
 * const follower = followJob<{ bytes: number }, { stage: string }>(location);
 * follower.on('progress', (progress) => console.log(progress.percent, progress.data?.stage));
 * const job = await follower.result(); // rejects with JobFailedError or JobCanceledError
 * console.log(job.result?.bytes);
 * ```
 */
export function followJob<Result = unknown, Data = unknown>(
  url: string | URL,
  options: FollowJobOptions = {},
): JobFollower<Result, Data> {
  const { transport, rejectOnFailure = true, headers, fetch, credentials, waitMs, ...rest } = options;
  const at = endpoints(url, 'jobs');
  const connection = {
    ...(headers === undefined ? {} : { headers }),
    ...(fetch === undefined ? {} : { fetch }),
  };
  const build = (name: JobTransportName): Transport<JobSnapshot<Result, Data>> =>
    name === 'sse'
      ? new SseTransport<JobSnapshot<Result, Data>>({
          url: at.http('/events'),
          decode: (text) => JSON.parse(text) as JobSnapshot<Result, Data>,
          ...connection,
          ...(credentials === undefined ? {} : { init: { credentials } }),
        })
      : new JobPollTransport<Result, Data>({
          url: at.resource,
          mode: name,
          ...connection,
          ...(waitMs === undefined ? {} : { waitMs }),
        });
  const chosen = chooseTransports(transport, ['sse', 'long-poll', 'poll'], () => true);
  const subscriber = new Subscriber<JobSnapshot<Result, Data>>({ ...rest, transports: chosen.map(build) });
  const client = new JobClient({ baseUrl: at.baseUrl, prefix: at.prefix, ...connection });
  return new JobFollower<Result, Data>(subscriber, client, at.name, rejectOnFailure);
}
