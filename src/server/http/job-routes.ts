/**
 * The job resource of the protocol: submit, list, get (conditional and held), cancel, forget, and the
 * job's event stream — each a method from a routed call to a response.
 *
 * @module
 */
import { InvalidArgumentError } from '../../core/errors.js';
import {
  HEADERS,
  JOB_STATUSES,
  type JobPage,
  type JobSnapshot,
  type JobStatus,
  MEDIA_TYPES,
  problem,
} from '../../core/protocol.js';
import type { JobRegistry } from '../jobs/job-registry.js';
import { type Call, ownerOf } from './caller.js';
import { ANSWERED_LATER, type RouteOutcome } from './exchange.js';
import { HeldJobPoll, type JobAnswers } from './held-polls.js';
import { Held, type HeldRequests } from './holding.js';
import {
  type IfNoneMatch,
  clip,
  matchesVersion,
  parseIfNoneMatch,
  parseUnsignedInteger,
  singleParam,
} from './params.js';
import { problemResponse } from './problems.js';
import { isPlainObject, readJsonBody } from './request-body.js';
import { CLIENT_GONE, SharedAnswers, formatSeconds, isResponse, json, noContent } from './responses.js';
import type { HandlerSettings } from './settings.js';
import type { SseEvent } from './sse.js';
import { type PollkitRequest, type PollkitResponse, getHeader } from './types.js';
import { applyWait, requestedWait } from './waits.js';

/** Who may see a job: when `owner` is given, another owner's job behaves as not found. */
export interface HandlerJobAccess {
  /** The caller's owner id. */
  readonly owner?: string;
}

/**
 * The part of a `JobRegistry` the handler uses. `JobRegistry` satisfies it; tests and other stores may
 * provide their own. Each method behaves as the `JobRegistry` method of the same name.
 */
export interface HandlerJobs {
  /** Validates and stores a job whose handler runs in this process. */
  submit(
    type: string,
    input: unknown,
    options?: { owner?: string; idempotencyKey?: string; signal?: AbortSignal },
  ): Promise<JobSnapshot>;
  /** The job's snapshot, or `undefined` when the caller cannot see it. */
  get(id: string, access?: HandlerJobAccess): Promise<JobSnapshot | undefined>;
  /** One page of the caller's jobs, newest first. */
  list(options?: HandlerJobAccess & { status?: JobStatus; pageSize?: number; pageToken?: string }): Promise<JobPage>;
  /** Best-effort cancel; `undefined` when the caller cannot see the job. */
  cancel(id: string, access?: HandlerJobAccess): Promise<JobSnapshot | undefined>;
  /** Removes a finished job; false when the caller cannot see it. */
  forget(id: string, access?: HandlerJobAccess): Promise<boolean>;
  /** Long poll: resolves when the version differs from `sinceVersion` or the time is up. */
  wait(
    id: string,
    options: HandlerJobAccess & { sinceVersion?: number; timeoutMs: number; signal?: AbortSignal },
  ): Promise<JobSnapshot | undefined>;
  /** The job's states as they change, ending after a terminal one. */
  changes(
    id: string,
    options?: HandlerJobAccess & { sinceVersion?: number; signal?: AbortSignal },
  ): AsyncIterableIterator<JobSnapshot>;
  /** The `Retry-After` seconds for a job that is not done. */
  retryAfterSeconds(job: JobSnapshot): number;
}

const MAX_TYPE_LENGTH = 256;
const MAX_PAGE_SIZE = 1000;
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;
const SAFE_HOST = /^[A-Za-z0-9.\-_:[\]]{1,255}$/;

// Enough for every job polled at the same moment on a busy server; each entry is one job's JSON.
const ANSWER_CACHE_SIZE = 512;

/** The routes under `{prefix}/jobs`. */
export class JobRoutes<Context> implements JobAnswers {
  readonly #jobs: HandlerJobs;
  readonly #settings: HandlerSettings;
  readonly #held: HeldRequests<Context>;
  /** Answers by job version (snapshots are immutable: a new version is a new object). */
  readonly #answers = new Map<JobSnapshot, SharedAnswers>();

  constructor(jobs: HandlerJobs, settings: HandlerSettings, held: HeldRequests<Context>) {
    this.#jobs = jobs;
    this.#settings = settings;
    this.#held = held;
  }

  /** `POST {p}/jobs`: 202 with the job and its `Operation-Location`. */
  async submit(call: Call<Context>): Promise<PollkitResponse> {
    const jobs = this.#jobs;
    const idempotencyKey = getHeader(call.request.headers, HEADERS.idempotencyKey);
    if (idempotencyKey !== undefined && !IDEMPOTENCY_KEY.test(idempotencyKey)) {
      throw new InvalidArgumentError('Idempotency-Key must be 1 to 255 visible ASCII characters', 'Idempotency-Key');
    }
    const body = await readJsonBody(call.request, this.#settings);
    if (!isPlainObject(body)) throw new InvalidArgumentError('The body must be a JSON object', 'body');
    const type = body['type'];
    if (typeof type !== 'string' || type.length === 0 || type.length > MAX_TYPE_LENGTH) {
      throw new InvalidArgumentError(`type must be a string of 1 to ${MAX_TYPE_LENGTH} characters`, 'type');
    }
    const job = await jobs.submit(type, body['input'] ?? null, {
      ...ownerOf(call.caller),
      ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
      signal: call.request.signal,
    });
    const url = `${this.#origin(call.request)}${this.#settings.prefix}/jobs/${encodeURIComponent(job.id)}`;
    return json(202, job, {
      ...this.#headers(job),
      [HEADERS.location]: url,
      [HEADERS.operationLocation]: url,
    });
  }

  /** `GET {p}/jobs`: one page of the caller's jobs. */
  async list(call: Call<Context>): Promise<PollkitResponse> {
    const status = singleParam(call.query, 'status');
    if (status !== undefined && status !== '' && !(JOB_STATUSES as readonly string[]).includes(status)) {
      throw new InvalidArgumentError(`status must be one of ${JOB_STATUSES.join(', ')}`, 'status');
    }
    const pageSizeText = singleParam(call.query, 'pageSize');
    const pageSize =
      pageSizeText === undefined || pageSizeText === '' ? undefined : parseUnsignedInteger(pageSizeText, 'pageSize');
    if (pageSize === 0) throw new InvalidArgumentError('pageSize must be at least 1', 'pageSize');
    const pageToken = singleParam(call.query, 'pageToken');
    if (pageToken !== undefined && pageToken.length > 1024) {
      throw new InvalidArgumentError('pageToken is too long', 'pageToken');
    }
    const page = await this.#jobs.list({
      ...ownerOf(call.caller),
      ...(status === undefined || status === '' ? {} : { status: status as JobStatus }),
      ...(pageSize === undefined ? {} : { pageSize: Math.min(pageSize, MAX_PAGE_SIZE) }),
      ...(pageToken === undefined || pageToken === '' ? {} : { pageToken }),
    });
    const body: JobPage =
      page.nextPageToken === undefined ? { jobs: page.jobs } : { jobs: page.jobs, nextPageToken: page.nextPageToken };
    return json(200, body, {});
  }

  /** `GET {p}/jobs/{id}`: the job, 304 when unchanged, held while a `wait` is asked for. */
  async get(id: string, call: Call<Context>): Promise<RouteOutcome> {
    const jobs = this.#jobs;
    const { request, query } = call;
    const condition: IfNoneMatch | undefined = parseIfNoneMatch(getHeader(request.headers, HEADERS.ifNoneMatch));
    const versionText = singleParam(query, 'version');
    const version = versionText === undefined ? undefined : parseUnsignedInteger(versionText, 'version');
    const requested = requestedWait(call);
    const access = ownerOf(call.caller);
    let job = await jobs.get(id, access);
    if (job === undefined) return jobNotFound(id);
    const waitMs = requested === undefined ? undefined : applyWait(this.#settings, requested);
    // `*` matches every version, so it names nothing to wait for a change from.
    const baseline =
      version ??
      (condition !== undefined && condition !== '*' && matchesVersion(condition, job.version)
        ? job.version
        : undefined);
    // A 304 answers a conditional request only; `?version=` always gets the job.
    const notModifiedBy = version === undefined ? condition : undefined;
    // A finished job is held too: it can still disappear (forget, expiry), and answering at once would
    // let a client that keeps polling its final version spin.
    if (waitMs !== undefined && waitMs > 0 && baseline === job.version) {
      const startWait = (jobs as Partial<Pick<JobRegistry, '_startWait'>>)._startWait;
      if (typeof startWait === 'function') {
        // Held as one object, the purgatory's operation, which writes its own answer.
        const poll = new HeldJobPoll(waitMs, call.exchange, this.#held, this.#held.keyOf(call), notModifiedBy, this);
        startWait.call(jobs, poll, id, { ...access, sinceVersion: baseline, timeoutMs: waitMs });
        return ANSWERED_LATER;
      }
      const held = await this.#held.hold(
        call,
        (signal) => jobs.wait(id, { ...access, sinceVersion: baseline, timeoutMs: waitMs, signal }),
        () => jobs.get(id, access),
      );
      if (held === CLIENT_GONE) return CLIENT_GONE;
      if (isResponse(held)) return held;
      if (held === undefined) return jobNotFound(id);
      job = held;
    }
    // Without a version to compare there is nothing to wait for, so the preference was not applied.
    return this.#answer(job, baseline === undefined ? undefined : waitMs, notModifiedBy);
  }

  /** @internal the answer of a held poll (see `HeldJobPoll`). */
  heldAnswer(job: JobSnapshot | undefined, poll: HeldJobPoll<unknown>): PollkitResponse {
    return job === undefined ? jobNotFound(poll.jobId) : this.#answer(job, poll.waitMs, poll.condition);
  }

  /**
   * The answer to a GET of `job`: 304 when `notModifiedBy` matches its version, else 200 with the job;
   * `Preference-Applied` when a wait was applied. Shared by every caller who gets the same version.
   */
  #answer(
    job: JobSnapshot,
    appliedWaitMs: number | undefined,
    notModifiedBy: IfNoneMatch | undefined,
  ): PollkitResponse {
    const notModified = notModifiedBy !== undefined && matchesVersion(notModifiedBy, job.version);
    const key = appliedWaitMs === undefined ? (notModified ? -2 : -1) : appliedWaitMs * 2 + (notModified ? 1 : 0);
    const answers = this.#answersOf(job);
    const known = answers.get(key);
    if (known !== undefined) return known;
    const headers: Record<string, string> = {
      ...this.#headers(job),
      [HEADERS.vary]: 'Prefer',
      ...(appliedWaitMs === undefined ? {} : { [HEADERS.preferenceApplied]: `wait=${formatSeconds(appliedWaitMs)}` }),
    };
    if (notModified) {
      headers[HEADERS.cacheControl] = 'no-store';
      return answers.set(key, { status: 304, headers: Object.freeze(headers), body: null });
    }
    headers[HEADERS.contentType] = MEDIA_TYPES.json;
    headers[HEADERS.cacheControl] = 'no-store';
    return answers.set(key, { status: 200, headers: Object.freeze(headers), body: answers.body });
  }

  /** The shared answers of one version of a job, kept for the latest few hundred versions asked for. */
  #answersOf(job: JobSnapshot): SharedAnswers {
    const cache = this.#answers;
    let answers = cache.get(job);
    if (answers === undefined) {
      answers = new SharedAnswers(job);
      if (cache.size >= ANSWER_CACHE_SIZE) cache.delete(cache.keys().next().value!);
      cache.set(job, answers);
    }
    return answers;
  }

  /** `POST {p}/jobs/{id}:cancel`. */
  async cancel(id: string, call: Call<Context>): Promise<PollkitResponse> {
    const job = await this.#jobs.cancel(id, ownerOf(call.caller));
    if (job === undefined) return jobNotFound(id);
    return json(200, job, this.#headers(job));
  }

  /** `DELETE {p}/jobs/{id}`. */
  async forget(id: string, call: Call<Context>): Promise<PollkitResponse> {
    const forgotten = await this.#jobs.forget(id, ownerOf(call.caller));
    if (!forgotten) return jobNotFound(id);
    return noContent();
  }

  /** `GET {p}/jobs/{id}/events`: the job's states as server-sent events, ending after the last. */
  async events(id: string, call: Call<Context>): Promise<PollkitResponse> {
    const jobs = this.#jobs;
    const held = this.#held;
    const { request } = call;
    const lastEventId = getHeader(request.headers, HEADERS.lastEventId);
    const since =
      lastEventId === undefined || lastEventId.trim() === ''
        ? undefined
        : parseUnsignedInteger(lastEventId, 'Last-Event-ID');
    const access = ownerOf(call.caller);
    const job = await jobs.get(id, access);
    if (job === undefined) return jobNotFound(id);
    // A client that already saw the terminal event reconnects by reflex; 204 tells EventSource to stop.
    if (job.done && since !== undefined && since >= job.version) return noContent();
    const entry = held.enter(call);
    if (!(entry instanceof Held)) return entry;
    const signal = entry.signal;
    const closing = (): boolean => held.closing && !request.signal.aborted;
    async function* events(): AsyncGenerator<SseEvent> {
      let lastVersion = since ?? -1;
      let lastStatus: JobStatus | undefined;
      const toEvent = (snapshot: JobSnapshot): SseEvent => {
        const kind = lastStatus === snapshot.status && !snapshot.done ? 'progress' : 'state';
        lastVersion = snapshot.version;
        lastStatus = snapshot.status;
        return { id: String(snapshot.version), event: kind, data: JSON.stringify(snapshot) };
      };
      try {
        const changes = jobs.changes(id, {
          ...access,
          ...(since === undefined ? {} : { sinceVersion: since }),
          signal,
        });
        for await (const snapshot of changes) {
          if (snapshot.version <= lastVersion) continue;
          yield toEvent(snapshot);
          if (snapshot.done) return;
        }
      } catch (error) {
        if (!signal.aborted) throw error;
      }
      if (closing()) {
        const current = await jobs.get(id, access);
        if (current !== undefined && current.version > lastVersion) yield toEvent(current);
      }
    }
    return held.stream(entry, call, events());
  }

  /** `ETag`, `Retry-After` while not done, and `Expires` once retention is known. */
  #headers(job: JobSnapshot): Record<string, string> {
    const headers: Record<string, string> = { [HEADERS.etag]: `"${job.version}"` };
    if (!job.done) headers[HEADERS.retryAfter] = String(this.#jobs.retryAfterSeconds(job));
    if (job.expiresAt !== null) {
      const at = Date.parse(job.expiresAt);
      if (!Number.isNaN(at)) headers[HEADERS.expires] = new Date(at).toUTCString();
    }
    return headers;
  }

  /** The origin for absolute URLs: `baseUrl`, else the request's own URL or `Host`. */
  #origin(request: PollkitRequest<Context>): string {
    if (this.#settings.baseUrl !== undefined) return this.#settings.baseUrl;
    if (/^https?:\/\//i.test(request.url)) return new URL(request.url).origin;
    const host = getHeader(request.headers, 'host') ?? getHeader(request.headers, ':authority');
    if (host === undefined || !SAFE_HOST.test(host)) return '';
    return `${request.secure === true ? 'https' : 'http'}://${host}`;
  }
}

function jobNotFound(id: string): PollkitResponse {
  return problemResponse(problem('job-not-found', `No job ${clip(id)} is visible to this caller.`));
}
