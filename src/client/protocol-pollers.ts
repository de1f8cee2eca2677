/**
 * Ready-made pollers for the pollkit protocol: give them the URL the server handed out (a job's
 * `Operation-Location`, a topic's address) and they bind {@link ShortPoller} or {@link LongPoller} to
 * {@link JobClient} or {@link TopicClient} with the right cursor, done test and hints.
 *
 * @module
 */
import type { Clock } from '../core/clock.js';
import { InvalidArgumentError, JobCanceledError, JobFailedError } from '../core/errors.js';
import type { JobProgress, JobSnapshot, TopicRecord } from '../core/protocol.js';
import { type HeadersOption, type FetchFunction, JobClient, TopicClient } from './http.js';
import { LongPoller, type LongPollerOptions } from './long-poller.js';
import { pollReply, ShortPoller, type ShortPollerOptions, unchangedReply } from './short-poller.js';
import { TopicReader } from './topic-reads.js';

/** How the bound pollers reach the server (the URL supplies the origin and prefix). */
export interface ProtocolConnectionOptions {
  /** The `fetch` to call. Default `globalThis.fetch` at call time. */
  readonly fetch?: FetchFunction;
  /** Headers added to every request. Default none. */
  readonly headers?: HeadersOption;
}

/** A URL split into the protocol's parts. */
export interface ParsedResourceUrl {
  /** The origin, e.g. `https://api.example.com`. */
  readonly baseUrl: string;
  /** The prefix before `/jobs/` or `/topics/`, e.g. `/pollkit`. */
  readonly prefix: string;
  /** The job id or topic name, decoded. */
  readonly name: string;
}

/**
 * Splits a job URL (`https://h/pollkit/jobs/ID`) or topic URL (`https://h/pollkit/topics/NAME`) into
 * origin, prefix and id or name. Throws {@link InvalidArgumentError} for anything else.
 *
 * @example
 * ```ts
 * import { parseResourceUrl } from 'pollkit/client';
 * parseResourceUrl('https://h/api/pollkit/jobs/3f1c', 'jobs'); // { baseUrl: 'https://h', prefix: '/api/pollkit', name: '3f1c' }
 * ```
 */
export function parseResourceUrl(url: string | URL, kind: 'jobs' | 'topics'): ParsedResourceUrl {
  let parsed: URL;
  try {
    parsed = new URL(String(url));
  } catch (error) {
    throw new InvalidArgumentError(`"url" must be an absolute URL, got ${String(url)}`, 'url', { cause: error });
  }
  const path = parsed.pathname.replace(/\/+$/, '');
  const marker = `/${kind}/`;
  const at = path.lastIndexOf(marker);
  const rest = at < 0 ? '' : path.slice(at + marker.length);
  if (rest === '' || rest.includes('/')) {
    throw new InvalidArgumentError(
      `"url" must look like https://host/prefix${marker}<name>, got ${String(url)}`,
      'url',
    );
  }
  return { baseUrl: parsed.origin, prefix: path.slice(0, at), name: decodeURIComponent(rest) };
}

// The bindings build their client from the URL's parts and whichever connection options were given;
// exactOptionalPropertyTypes forbids passing an explicit undefined through.
function clientOptions(
  baseUrl: string,
  prefix: string,
  fetch: FetchFunction | undefined,
  headers: HeadersOption | undefined,
  clock: Clock | undefined,
): { baseUrl: string; prefix: string; fetch?: FetchFunction; headers?: HeadersOption; clock?: Clock } {
  return {
    baseUrl,
    prefix,
    ...(fetch === undefined ? {} : { fetch }),
    ...(headers === undefined ? {} : { headers }),
    ...(clock === undefined ? {} : { clock }),
  };
}

/** Options for {@link pollJob}. */
export interface PollJobOptions<Result = unknown, Data = unknown>
  extends
    ProtocolConnectionOptions,
    Omit<
      ShortPollerOptions<JobSnapshot<Result, Data>, JobProgress<Data>>,
      'poll' | 'done' | 'failed' | 'equals' | 'progressOf'
    > {
  /**
   * End with a {@link JobFailedError} or {@link JobCanceledError} when the job fails or is canceled, so
   * that `result()` resolves only with a succeeded job. `false` resolves with any finished job. Default `true`.
   */
  readonly rejectOnFailure?: boolean;
}

/** The error a failed or canceled job ends in, or undefined. @internal */
export function jobFailure(job: JobSnapshot): unknown {
  if (job.status === 'failed') {
    // Spelled out rather than built with problem(), whose table of every code would ride into the bundle.
    const fallback = { type: 'urn:pollkit:problem:job-failed', title: 'Job failed', status: 500, code: 'job-failed' };
    return new JobFailedError(job.id, job.error ?? { ...fallback, detail: `Job ${job.id} failed` });
  }
  if (job.status === 'canceled') return new JobCanceledError(job.id);
  return undefined;
}

/**
 * Short-polls a job by URL with conditional GETs (an unchanged job costs a 304), the server's
 * `Retry-After` as the floor of each wait, `progress` events from the job's progress, and `result()`
 * resolving with the succeeded job.
 *
 * @example
 * ```ts
 * import { JobClient, pollJob } from 'pollkit/client';
 *
 * const { location } = await new JobClient({ baseUrl: 'https://api.example.com' }).submit('report', { month: 1 });
 * const poller = pollJob(location, { timeoutMs: 5 * 60_000 });
 * poller.on('progress', (progress) => console.log(progress));
 * const job = await poller.result();
 * console.log(job.result);
 * ```
 */
export function pollJob<Result = unknown, Data = unknown>(
  url: string | URL,
  options: PollJobOptions<Result, Data> = {},
): ShortPoller<JobSnapshot<Result, Data>, JobProgress<Data>> {
  const { baseUrl, prefix, name: id } = parseResourceUrl(url, 'jobs');
  const { fetch, headers, rejectOnFailure = true, ...rest } = options;
  const client = new JobClient(clientOptions(baseUrl, prefix, fetch, headers, rest.clock));
  return new ShortPoller<JobSnapshot<Result, Data>, JobProgress<Data>>({
    ...rest,
    poll: async ({ signal, cursor }) => {
      const answer = await client.get<Result, Data>(id, {
        signal,
        ...(cursor === undefined ? {} : { ifNoneMatch: cursor.version }),
      });
      const hint = { hintMs: answer.meta.hintMs };
      return answer.changed ? pollReply(answer.job, hint) : unchangedReply(hint);
    },
    done: (job) => job.done,
    ...(rejectOnFailure ? { failed: jobFailure } : {}),
    equals: (previous, next) => previous.version === next.version,
    progressOf: (job) => job.progress,
  });
}

/** Options for {@link longPollJob}. */
export interface LongPollJobOptions<Result = unknown, Data = unknown>
  extends
    ProtocolConnectionOptions,
    Omit<LongPollerOptions<JobSnapshot<Result, Data>, number>, 'poll' | 'cursor' | 'onGone' | 'failed'> {
  /** Use the CORS-simple `?version=&wait=` form (no preflight in browsers). Default `false`. */
  readonly simpleRequests?: boolean;
  /** As in {@link PollJobOptions.rejectOnFailure}. Default `true`. */
  readonly rejectOnFailure?: boolean;
}

/**
 * Long-polls a job by URL (`If-None-Match` + `Prefer: wait`): each change arrives one round trip after
 * it happens, as a `data` event with the new snapshot; `result()` resolves with the succeeded job.
 *
 * @example
 * ```ts
 * import { longPollJob } from 'pollkit/client';
 *
 * const poller = longPollJob('https://api.example.com/pollkit/jobs/3f1c');
 * for await (const job of poller) console.log(job.status, job.progress?.percent);
 * ```
 */
export function longPollJob<Result = unknown, Data = unknown>(
  url: string | URL,
  options: LongPollJobOptions<Result, Data> = {},
): LongPoller<JobSnapshot<Result, Data>, number> {
  const { baseUrl, prefix, name: id } = parseResourceUrl(url, 'jobs');
  const { fetch, headers, simpleRequests, rejectOnFailure = true, ...rest } = options;
  const client = new JobClient({
    ...clientOptions(baseUrl, prefix, fetch, headers, rest.clock),
    ...(simpleRequests === undefined ? {} : { simpleRequests }),
  });
  return new LongPoller<JobSnapshot<Result, Data>, number>({
    ...rest,
    // Retry-After on a job answer is advice for short pollers; a long poller's pace is set by the
    // server holding the request, so the hint is not passed on.
    poll: async ({ signal, cursor, waitMs }) => {
      const answer =
        cursor === undefined || waitMs <= 0
          ? await client.get<Result, Data>(id, { signal, ...(cursor === undefined ? {} : { ifNoneMatch: cursor }) })
          : await client.wait<Result, Data>(id, { signal, version: cursor, waitSeconds: waitMs / 1000 });
      if (!answer.changed) return { records: [], cursor: cursor ?? 0 };
      return { records: [answer.job], cursor: answer.job.version, done: answer.job.done };
    },
    ...(rejectOnFailure ? { failed: jobFailure } : {}),
  });
}

/** Where a topic consumer stands: the next offset, and the epoch it belongs to. */
export interface TopicCursor {
  /** The offset of the next record to fetch. */
  readonly offset: number;
  /** The log's epoch as last seen; `undefined` before the first answer. */
  readonly epoch: string | undefined;
  /** The server's cursor for the next long poll at the head of a public topic (docs/cdn.md); `undefined` while behind. */
  readonly cursor?: string;
}

/** Options for {@link consumeTopic}. */
export interface ConsumeTopicOptions<Value = unknown>
  extends
    ProtocolConnectionOptions,
    Omit<LongPollerOptions<TopicRecord<Value>, TopicCursor>, 'poll' | 'cursor' | 'failed'> {
  /** The first offset to read. Required. */
  readonly offset: number;
  /** The epoch `offset` belongs to, if known; a reset log then answers 410 instead of restarting silently. */
  readonly epoch?: string;
  /** The most records per answer. Default: the server's. */
  readonly limit?: number;
  /** Hold each request until this many records exist. Default: the server's (1). */
  readonly minRecords?: number;
}

/**
 * Consumes a topic by URL from an offset with long polls, yielding records in order. When the offset
 * is trimmed or the log is reset the poller emits `gone` and ends with an {@link OffsetGoneError}
 * carrying the new `earliestOffset`, unless `onGone` says where to resume.
 *
 * @example
 * ```ts
 * import { consumeTopic } from 'pollkit/client';
 *
 * const consumer = consumeTopic('https://api.example.com/pollkit/topics/orders', {
 *   offset: 0,
 *   onGone: (gone) => ({ offset: gone.earliestOffset, epoch: gone.epoch }), // accept the gap, knowingly
 * });
 * consumer.on('gone', (gone) => console.warn(`skipped to ${gone.earliestOffset}`));
 * for await (const record of consumer) console.log(record.offset, record.value);
 * ```
 */
export function consumeTopic<Value = unknown>(
  url: string | URL,
  options: ConsumeTopicOptions<Value>,
): LongPoller<TopicRecord<Value>, TopicCursor> {
  const { baseUrl, prefix, name: topic } = parseResourceUrl(url, 'topics');
  if (
    typeof options !== 'object' ||
    options === null ||
    !(Number.isSafeInteger(options.offset) && options.offset >= 0)
  ) {
    throw new InvalidArgumentError(`consumeTopic option "offset" must be an integer >= 0`, 'offset');
  }
  const { fetch, headers, offset, epoch, limit, minRecords, ...rest } = options;
  const client = new TopicClient(clientOptions(baseUrl, prefix, fetch, headers, rest.clock));
  const reader = new TopicReader<Value>(client, topic, {
    ...(limit === undefined ? {} : { limit }),
    ...(minRecords === undefined ? {} : { minRecords }),
  });
  return new LongPoller<TopicRecord<Value>, TopicCursor>({
    ...rest,
    cursor: { offset, epoch },
    poll: async ({ signal, cursor, waitMs }) => {
      const { records, next } = await reader.read(cursor ?? { offset, epoch }, waitMs / 1000, signal);
      return { records, cursor: next };
    },
  });
}
