/**
 * The wire protocol of `PROTOCOL.md`, version 1, as types and constants: the one source of truth that
 * the client and the server both import, so the two sides cannot drift apart.
 *
 * @module
 */
import {
  CONTENT_TYPE,
  ETAG,
  EVENT_STREAM,
  IDEMPOTENCY_KEY,
  IF_NONE_MATCH,
  JSON_TYPE,
  LAST_EVENT_ID,
  LOCATION,
  OPERATION_LOCATION,
  POLL_INTERVAL,
  PREFER,
  PREFERENCE_APPLIED,
  PROBLEM_TYPE,
  RETRY_AFTER,
} from './wire.js';

/** The protocol version these types describe. */
export const PROTOCOL_VERSION = 1;

/** The path prefix servers mount under by default. */
export const DEFAULT_PREFIX = '/pollkit';

/** The server's default cap on `wait`, in seconds. */
export const DEFAULT_MAX_WAIT_SECONDS = 30;

/** The default interval between SSE heartbeat comments, in milliseconds. */
export const DEFAULT_HEARTBEAT_MS = 15_000;

/** The default request body limit, in bytes (100 KiB). */
export const DEFAULT_BODY_LIMIT_BYTES = 102_400;

/**
 * Every state a job can be in. Strings are lowercase on the wire.
 *
 * @example
 * ```ts
 * import { JOB_STATUSES } from 'pollkit';
 * console.log(JOB_STATUSES.includes('running')); // true
 * ```
 */
export const JOB_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'canceled'] as const;

/** A job's state. */
export type JobStatus = (typeof JOB_STATUSES)[number];

/** The states after which a job never changes again. */
export type TerminalJobStatus = Extract<JobStatus, 'succeeded' | 'failed' | 'canceled'>;

/**
 * True for `succeeded`, `failed` and `canceled`.
 *
 * @example
 * ```ts
 * import { isTerminalStatus } from 'pollkit';
 * console.log(isTerminalStatus('running'), isTerminalStatus('failed')); // false true
 * ```
 */
export function isTerminalStatus(status: JobStatus): status is TerminalJobStatus {
  return status === 'succeeded' || status === 'failed' || status === 'canceled';
}

/**
 * An RFC 9457 problem details object, with pollkit's stable `code` and Azure's `message` mirror.
 *
 * @example
 * ```ts
 * import type { Problem } from 'pollkit';
 * const problem: Problem = { type: 'urn:pollkit:problem:job-not-found', title: 'Job not found', status: 404, code: 'job-not-found' };
 * ```
 */
export interface Problem {
  /** A URI naming the problem type; pollkit's are `urn:pollkit:problem:<code>`. */
  readonly type: string;
  /** A short, human-readable summary of the problem type. */
  readonly title: string;
  /** The HTTP status code. */
  readonly status: number;
  /** A human-readable explanation of this occurrence. */
  readonly detail?: string;
  /** The stable, documented identifier of the problem. */
  readonly code: string;
  /** Mirrors `detail`, for clients that read `message` (Azure). */
  readonly message?: string;
  /** Problem-specific extension members, such as `earliestOffset` and `epoch` on 410. */
  readonly [extension: string]: unknown;
}

/** A job's last reported progress; `Data` types its `data`. */
export interface JobProgress<Data = unknown> {
  /** Completion in percent, 0–100. */
  readonly percent?: number;
  /** A short human-readable note. */
  readonly message?: string;
  /** Arbitrary JSON the handler chose to share. */
  readonly data?: Data;
}

/**
 * A job as it travels on the wire (`GET {p}/jobs/{id}`).
 *
 * @example
 * ```ts
 * import type { JobSnapshot } from 'pollkit';
 * function describe(job: JobSnapshot): string {
 *   return `${job.type} ${job.status} v${job.version}`;
 * }
 * ```
 */
export interface JobSnapshot<Result = unknown, Data = unknown> {
  /** Opaque id with at least 122 random bits. */
  readonly id: string;
  /** The job type it was submitted as. */
  readonly type: string;
  /** The job's state. */
  readonly status: JobStatus;
  /** True exactly for terminal statuses. */
  readonly done: boolean;
  /** The last reported progress, or `null` before any. */
  readonly progress: JobProgress<Data> | null;
  /** Set exactly when `status` is `succeeded`. */
  readonly result: Result | null;
  /** Set exactly when `status` is `failed` or `canceled`. */
  readonly error: Problem | null;
  /** Rises by one on every observable change; sent as a strong `ETag`. */
  readonly version: number;
  /** When the job was submitted (ISO-8601 UTC). */
  readonly createdAt: string;
  /** When the job last changed (ISO-8601 UTC). */
  readonly updatedAt: string;
  /** When the job started running, or `null`. */
  readonly startedAt: string | null;
  /** When the job finished, or `null` while not done. */
  readonly finishedAt: string | null;
  /** When the server forgets the job, or `null` if it keeps it until finished. */
  readonly expiresAt: string | null;
}

/** One page of `GET {p}/jobs`. */
export interface JobPage<Result = unknown> {
  /** The jobs on this page, newest first. */
  readonly jobs: readonly JobSnapshot<Result>[];
  /** Present when more jobs follow. */
  readonly nextPageToken?: string;
}

/**
 * One record of a topic log.
 *
 * @example
 * ```ts
 * import type { TopicRecord } from 'pollkit';
 * const record: TopicRecord<string> = { offset: 0, timestamp: new Date().toISOString(), key: null, value: 'hi' };
 * ```
 */
export interface TopicRecord<Value = unknown> {
  /** The record's position in the log; gap-free within an epoch. */
  readonly offset: number;
  /** ISO-8601 UTC time of the append. */
  readonly timestamp: string;
  /** The optional key given at append time. */
  readonly key: string | null;
  /** The appended value. */
  readonly value: Value;
}

/** The body of `GET {p}/topics/{t}/records`. */
export interface TopicFetchResult<Value = unknown> {
  /** The topic's name. */
  readonly topic: string;
  /** Changes whenever the log is reset; a stale epoch is answered with 410. */
  readonly epoch: string;
  /** The records fetched, in offset order; empty at timeout. */
  readonly records: readonly TopicRecord<Value>[];
  /** The offset to ask for next. */
  readonly nextOffset: number;
  /** The offset the next appended record will get. */
  readonly highWatermark: number;
  /** The first offset still retained. */
  readonly earliestOffset: number;
  /**
   * Present on answers that shared caches may keep (public topics, docs/cdn.md): send it back as
   * `cursor` with the next long poll at the head, so that every client at the same position sends the
   * same URL. An opaque token; it only ever moves forward.
   */
  readonly cursor?: string;
}

/**
 * Header names the protocol uses, lowercase as HTTP/2 and the fetch API present them.
 *
 * @example
 * ```ts
 * import { HEADERS } from 'pollkit';
 * const headers = { [HEADERS.ifNoneMatch]: '"7"', [HEADERS.prefer]: 'wait=25' };
 * ```
 */
export const HEADERS = /* @__PURE__ */ Object.freeze({
  /** Where the new job lives (relative or absolute). */
  location: LOCATION,
  /** The job's absolute URL (Azure long-running operations). */
  operationLocation: OPERATION_LOCATION,
  /** Seconds or an HTTP-date to wait before polling again. */
  retryAfter: RETRY_AFTER,
  /** A job's version, as a strong entity tag. */
  etag: ETAG,
  /** The version the client already has. */
  ifNoneMatch: IF_NONE_MATCH,
  /** `wait=N`: hold the request up to N seconds (RFC 7240). */
  prefer: PREFER,
  /** The wait the server actually applied. */
  preferenceApplied: PREFERENCE_APPLIED,
  /** Sent as `Prefer` on poll responses. */
  vary: 'vary',
  /** `no-store` on poll responses, except fetches of public topics (docs/cdn.md). */
  cacheControl: 'cache-control',
  /** When a finished job will be forgotten. */
  expires: 'expires',
  /** Makes a submit safe to repeat. */
  idempotencyKey: IDEMPOTENCY_KEY,
  /** The last SSE event id the client saw. */
  lastEventId: LAST_EVENT_ID,
  /** The body media type. */
  contentType: CONTENT_TYPE,
  /** A server's suggested short-poll interval in seconds. */
  pollInterval: POLL_INTERVAL,
});

/**
 * Media types the protocol uses.
 *
 * @example
 * ```ts
 * import { MEDIA_TYPES } from 'pollkit';
 * const isProblem = (type: string | null) => type?.startsWith(MEDIA_TYPES.problem) === true;
 * ```
 */
export const MEDIA_TYPES = /* @__PURE__ */ Object.freeze({
  /** Job, page and fetch bodies. */
  json: JSON_TYPE,
  /** RFC 9457 problem details. */
  problem: PROBLEM_TYPE,
  /** Server-sent events. */
  eventStream: EVENT_STREAM,
});

/** The status and title a problem code is always sent with. */
export interface ProblemDefinition {
  /** The HTTP status code. */
  readonly status: number;
  /** The problem type's short summary. */
  readonly title: string;
}

/**
 * Every stable problem code the protocol defines; `PROBLEMS` maps each to its status and title.
 *
 * @example
 * ```ts
 * import type { ProblemCode } from 'pollkit';
 * const code: ProblemCode = 'offset-gone';
 * ```
 */
export type ProblemCode =
  | 'bad-request'
  | 'invalid-parameter'
  | 'invalid-input'
  | 'unknown-job-type'
  | 'idempotency-key-reused'
  | 'offset-out-of-range'
  | 'job-not-found'
  | 'topic-not-found'
  | 'not-found'
  | 'method-not-allowed'
  | 'job-not-finished'
  | 'illegal-transition'
  | 'offset-gone'
  | 'payload-too-large'
  | 'unsupported-media-type'
  | 'too-many-held-requests'
  | 'too-many-jobs'
  | 'too-many-topics'
  | 'forbidden'
  | 'appends-disabled'
  | 'overloaded'
  | 'shutting-down'
  | 'canceled'
  | 'job-failed'
  | 'job-timeout'
  | 'worker-lost'
  | 'unauthorized'
  | 'internal-error';

/**
 * Every stable problem `code`, with the status and title it is sent with.
 *
 * @example
 * ```ts
 * import { PROBLEMS } from 'pollkit';
 * console.log(PROBLEMS['job-not-found'].status); // 404
 * ```
 */
export const PROBLEMS: Readonly<Record<ProblemCode, ProblemDefinition>> = /* @__PURE__ */ Object.freeze({
  'bad-request': { status: 400, title: 'Bad request' },
  'invalid-parameter': { status: 400, title: 'Invalid parameter' },
  'invalid-input': { status: 400, title: 'Invalid job input' },
  'unknown-job-type': { status: 400, title: 'Unknown job type' },
  'idempotency-key-reused': { status: 400, title: 'Idempotency key reused with a different body' },
  'offset-out-of-range': { status: 400, title: 'Offset out of range' },
  'job-not-found': { status: 404, title: 'Job not found' },
  'topic-not-found': { status: 404, title: 'Topic not found' },
  'not-found': { status: 404, title: 'Not found' },
  'method-not-allowed': { status: 405, title: 'Method not allowed' },
  'job-not-finished': { status: 409, title: 'Job not finished' },
  'illegal-transition': { status: 409, title: 'Illegal state transition' },
  'offset-gone': { status: 410, title: 'Offset gone' },
  'payload-too-large': { status: 413, title: 'Payload too large' },
  'unsupported-media-type': { status: 415, title: 'Unsupported media type' },
  'too-many-held-requests': { status: 429, title: 'Too many held requests' },
  'too-many-jobs': { status: 429, title: 'Too many retained jobs' },
  'too-many-topics': { status: 403, title: 'Too many topics' },
  forbidden: { status: 403, title: 'Forbidden' },
  'appends-disabled': { status: 403, title: 'Appends disabled' },
  overloaded: { status: 503, title: 'Server overloaded' },
  'shutting-down': { status: 503, title: 'Server shutting down' },
  canceled: { status: 409, title: 'Job canceled' },
  'job-failed': { status: 500, title: 'Job failed' },
  'job-timeout': { status: 504, title: 'Job timed out' },
  'worker-lost': { status: 503, title: 'Worker lost' },
  unauthorized: { status: 401, title: 'Unauthorized' },
  'internal-error': { status: 500, title: 'Internal server error' },
});

/**
 * The URI of a pollkit problem type.
 *
 * @example
 * ```ts
 * import { problemType } from 'pollkit';
 * console.log(problemType('offset-gone')); // "urn:pollkit:problem:offset-gone"
 * ```
 */
export function problemType(code: string): string {
  return `urn:pollkit:problem:${code}`;
}

/**
 * Builds a problem object for a pollkit code, with `message` mirroring `detail`.
 *
 * @example
 * ```ts
 * import { problem } from 'pollkit';
 * const body = problem('job-not-found', 'No job 3f1c is visible to this caller.');
 * ```
 */
export function problem(code: ProblemCode, detail?: string, extensions: Record<string, unknown> = {}): Problem {
  const { status, title } = PROBLEMS[code];
  return {
    ...extensions,
    type: problemType(code),
    title,
    status,
    code,
    ...(detail === undefined ? {} : { detail, message: detail }),
  };
}

/** Where a topic SSE event id says a reader stopped. */
export interface TopicEventPosition {
  /** The offset of the last record delivered. */
  readonly offset: number;
  /** The log's epoch then, when the id carries one (ids of pollkit before 0.2 do not). */
  readonly epoch: string | undefined;
}

/**
 * The `id:` of a topic SSE event: `<offset>@<epoch>`. The epoch rides along so that a browser's own
 * EventSource, which resends the last id as `Last-Event-ID` and nothing else, lets the server notice a
 * log reset on reconnect and say so (an in-band `reset` event) instead of resuming mid-way through the
 * new log.
 *
 * @example
 * ```ts
 * import { topicEventId } from 'pollkit';
 * topicEventId(120, 'k9f'); // "120@k9f"
 * ```
 */
export function topicEventId(offset: number, epoch: string): string {
  return `${offset}@${epoch}`;
}

/**
 * Reads a topic SSE event id (`120@k9f`, or a bare offset `120`); `undefined` when it is neither.
 *
 * @example
 * ```ts
 * import { parseTopicEventId } from 'pollkit';
 * parseTopicEventId('120@k9f'); // { offset: 120, epoch: 'k9f' }
 * ```
 */
export function parseTopicEventId(id: string): TopicEventPosition | undefined {
  const match = /^\s*(\d{1,16})(?:@(.{1,128}))?\s*$/.exec(id);
  if (match === null) return undefined;
  const offset = Number(match[1]);
  return Number.isSafeInteger(offset) ? { offset, epoch: match[2] } : undefined;
}
