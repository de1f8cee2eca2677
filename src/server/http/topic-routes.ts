/**
 * The topic resource of the protocol: append, fetch (held until records arrive), and the topic's event
 * stream — each a method from a routed call to a response.
 *
 * @module
 */
import { InvalidArgumentError, OffsetGoneError, OffsetOutOfRangeError, PollkitError } from '../../core/errors.js';
import { HEADERS, type TopicFetchResult, type TopicRecord, problem, topicEventId } from '../../core/protocol.js';
import type { TopicPosition } from '../topics/stores/topic-store.js';
import type { Topic } from '../topics/topic.js';
import { type Call, creatorOf } from './caller.js';
import { ANSWERED_LATER, type RouteOutcome } from './exchange.js';
import { HeldCachedTopicFetch, HeldTopicFetch } from './held-polls.js';
import { Held, type HeldRequests } from './holding.js';
import { clip, parseUnsignedInteger, singleParam } from './params.js';
import { errorToProblem, problemResponse } from './problems.js';
import { isPlainObject, readJsonBody } from './request-body.js';
import { fetchAnswer, isResponse, json, noContent } from './responses.js';
import type { HandlerSettings } from './settings.js';
import type { SseEvent } from './sse.js';
import { type SharedRead, sharedRead } from './topic-cache.js';
import { parseLastEventId, resetSince } from './topic-resume.js';
import { type PollkitResponse, getHeader } from './types.js';
import { applyWait, requestedWait } from './waits.js';

/** The part of a `Topic` the handler uses; each method behaves as the `Topic` method of the same name. */
export interface HandlerTopic {
  /** The topic's name. */
  readonly name: string;
  /** Appends a record; resolves with its offset. */
  append(value: unknown, options?: { key?: string | null }): Promise<number>;
  /** Fetches records from `offset`, held up to `waitMs` until `minRecords` exist. */
  read(
    offset: number,
    options?: { limit?: number; minRecords?: number; waitMs?: number; epoch?: string; signal?: AbortSignal },
  ): Promise<TopicFetchResult>;
  /** Streams records from `fromOffset`. */
  subscribe(fromOffset: number, options?: { signal?: AbortSignal; epoch?: string }): AsyncIterableIterator<TopicRecord>;
  /** The log's epoch, earliest retained offset and high watermark. */
  position(): Promise<TopicPosition>;
}

/** The part of a `TopicRegistry` the handler uses. */
export interface HandlerTopics {
  /** The topic named `name`, created on first use (by `owner`, who counts it against a per-owner cap). */
  topic(name: string, options?: { owner?: string }): HandlerTopic;
  /** The topic named `name` if it exists. */
  get(name: string): HandlerTopic | undefined;
  /**
   * Deletes a topic; with `owner`, only one that owner created (else code `forbidden`). Without this
   * method, `DELETE {p}/topics/{t}` answers 405.
   */
  delete?(name: string, options?: { owner?: string }): Promise<boolean>;
}

const DEFAULT_FETCH_LIMIT = 100;

/** The routes under `{prefix}/topics/{name}`. */
export class TopicRoutes<Context> {
  readonly #topics: HandlerTopics;
  readonly #settings: HandlerSettings;
  readonly #held: HeldRequests<Context>;

  constructor(topics: HandlerTopics, settings: HandlerSettings, held: HeldRequests<Context>) {
    this.#topics = topics;
    this.#settings = settings;
    this.#held = held;
  }

  /** `POST {p}/topics/{name}/records`: 201 with the record's offset. */
  async append(name: string, call: Call<Context>): Promise<PollkitResponse> {
    if (call.caller?.canReadTopic !== undefined && !call.caller.canReadTopic(name)) return topicNotFound(name);
    const allowed = call.caller?.canAppendTopic?.(name) ?? this.#settings.publicAppends;
    if (!allowed) {
      return problemResponse(problem('appends-disabled', `Appending to topic ${clip(name)} over HTTP is disabled.`));
    }
    const body = await readJsonBody(call.request, this.#settings);
    if (!isPlainObject(body)) throw new InvalidArgumentError('The body must be a JSON object', 'body');
    if (!Object.hasOwn(body, 'value')) throw new InvalidArgumentError('The body needs a "value"', 'value');
    const key = body['key'];
    if (key !== undefined && key !== null && typeof key !== 'string') {
      throw new InvalidArgumentError('key must be a string or null', 'key');
    }
    const topic = this.#create(name, call);
    const offset = await topic.append(body['value'], key === undefined ? {} : { key });
    return json(201, { offset }, {});
  }

  /** `DELETE {p}/topics/{name}`: 204 once the topic is gone. */
  async delete(name: string, call: Call<Context>): Promise<PollkitResponse> {
    const topics = this.#topics;
    if (topics.delete === undefined) {
      return problemResponse(problem('method-not-allowed', 'This server does not delete topics.'), undefined, {
        allow: 'OPTIONS',
      });
    }
    if (call.caller?.canReadTopic !== undefined && !call.caller.canReadTopic(name)) return topicNotFound(name);
    const decided = call.caller?.canDeleteTopic?.(name);
    if (decided === false) {
      return problemResponse(problem('forbidden', `This caller may not delete topic ${clip(name)}.`));
    }
    let deleted: boolean;
    if (decided === true) deleted = await topics.delete(name);
    else {
      // No explicit rule: the topic's creator may delete it, nobody else.
      const owner = creatorOf(call);
      if (owner === undefined) {
        return problemResponse(problem('forbidden', `This caller may not delete topic ${clip(name)}.`));
      }
      deleted = await topics.delete(name, { owner });
    }
    return deleted ? noContent() : topicNotFound(name);
  }

  /** `GET {p}/topics/{name}/records?offset=`: records from an offset, held until there are enough. */
  async read(name: string, call: Call<Context>): Promise<RouteOutcome> {
    const settings = this.#settings;
    const { query } = call;
    const offsetText = singleParam(query, 'offset');
    if (offsetText === undefined) throw new InvalidArgumentError('offset is required', 'offset');
    const offset = parseUnsignedInteger(offsetText, 'offset');
    const limitText = singleParam(query, 'limit');
    const limit = limitText === undefined ? DEFAULT_FETCH_LIMIT : parseUnsignedInteger(limitText, 'limit');
    if (limit === 0) throw new InvalidArgumentError('limit must be at least 1', 'limit');
    const minText = singleParam(query, 'minRecords');
    const minRecords = minText === undefined ? 1 : parseUnsignedInteger(minText, 'minRecords');
    const epoch = epochParam(query);
    const requested = requestedWait(call);
    const topic = this.#visibleTopic(name, call);
    if (topic === undefined) return topicNotFound(name);
    const waitMs = requested === undefined ? undefined : applyWait(settings, requested);
    const options = {
      limit: Math.min(limit, settings.maxRecordsPerFetch),
      minRecords: Math.min(minRecords, limit, settings.maxRecordsPerFetch),
      ...(epoch === undefined ? {} : { epoch }),
    };
    const shared = sharedRead(
      settings.topicCache,
      { query, headers: call.request.headers, requestedWaitMs: requested },
      {
        isPublic: call.caller?.isPublicTopic?.(name) === true,
        offset,
        limit: options.limit,
        epochInUrl: epoch !== undefined,
      },
    );
    if (waitMs !== undefined && waitMs > 0) {
      const fetch = (topic as Partial<Pick<Topic, '_fetch'>>)._fetch;
      if (typeof fetch === 'function') {
        // Held as one object, the purgatory's operation, which writes its own answer. Only a read that
        // can be answered later takes a held slot; a gone or out-of-range offset fails at once.
        const key = this.#held.keyOf(call);
        const held =
          shared === undefined
            ? new HeldTopicFetch(waitMs, call.exchange, this.#held, key)
            : new HeldCachedTopicFetch(waitMs, call.exchange, this.#held, key, shared);
        fetch.call(topic, held, offset, options);
        return ANSWERED_LATER;
      }
      return this.#holdWithPromises(topic, call, offset, options, waitMs, shared);
    }
    return fetchAnswer(await topic.read(offset, options), waitMs, shared);
  }

  /** A held read on a `HandlerTopic` that is not pollkit's own `Topic`: its promise API in a held slot. */
  async #holdWithPromises(
    topic: HandlerTopic,
    call: Call<Context>,
    offset: number,
    options: { limit: number; minRecords: number; epoch?: string },
    waitMs: number,
    shared: SharedRead | undefined,
  ): Promise<PollkitResponse> {
    const position = await topic.position();
    if (
      offset >= position.earliestOffset &&
      offset <= position.highWatermark &&
      position.highWatermark - offset < options.minRecords
    ) {
      const held = await this.#held.hold(
        call,
        (signal) => topic.read(offset, { ...options, waitMs, signal }),
        () => topic.read(offset, options),
      );
      return isResponse(held) ? held : fetchAnswer(held, waitMs, shared);
    }
    return fetchAnswer(await topic.read(offset, options), waitMs, shared);
  }

  /** `GET {p}/topics/{name}/events`: the topic's records as server-sent events. */
  async events(name: string, call: Call<Context>): Promise<PollkitResponse> {
    const { request, query } = call;
    const lastEventId = getHeader(request.headers, HEADERS.lastEventId);
    const offsetText = singleParam(query, 'offset');
    let from: number | undefined;
    // Last-Event-ID wins over ?offset: it is where a reconnecting EventSource actually stopped.
    const resumed = lastEventId === undefined || lastEventId.trim() === '' ? undefined : parseLastEventId(lastEventId);
    if (resumed !== undefined) from = resumed.offset + 1;
    else if (offsetText !== undefined) from = parseUnsignedInteger(offsetText, 'offset');
    const epoch = epochParam(query);
    const topic = this.#visibleTopic(name, call);
    if (topic === undefined) return topicNotFound(name);
    const position = await topic.position();
    from ??= position.highWatermark;
    const reset = resetSince(resumed, position);
    if (reset !== undefined) from = position.earliestOffset;
    if (from < position.earliestOffset || (epoch !== undefined && epoch !== position.epoch)) {
      throw new OffsetGoneError(name, from, position);
    }
    if (from > position.highWatermark) throw new OffsetOutOfRangeError(name, from, position.highWatermark);
    const entry = this.#held.enter(call);
    if (!(entry instanceof Held)) return entry;
    const signal = entry.signal;
    const start = from;
    async function* events(): AsyncGenerator<SseEvent> {
      if (reset !== undefined) yield reset;
      try {
        for await (const record of topic!.subscribe(start, { signal, epoch: position.epoch })) {
          yield { id: topicEventId(record.offset, position.epoch), data: JSON.stringify(record) };
        }
      } catch (error) {
        if (signal.aborted) return;
        // Fell behind retention mid-stream, or the topic was deleted: say so in-band; the reconnect
        // then gets the 410 or 404.
        if (OffsetGoneError.is(error) || (PollkitError.is(error) && error.code === 'topic-not-found')) {
          yield { event: 'problem', data: JSON.stringify(errorToProblem(error).problem) };
          return;
        }
        throw error;
      }
    }
    return this.#held.stream(entry, call, events());
  }

  /** The topic, created on behalf of the caller when it does not exist yet. */
  #create(name: string, call: Call<Context>): HandlerTopic {
    const owner = creatorOf(call);
    return owner === undefined ? this.#topics.topic(name) : this.#topics.topic(name, { owner });
  }

  #visibleTopic(name: string, call: Call<Context>): HandlerTopic | undefined {
    if (call.caller?.canReadTopic !== undefined && !call.caller.canReadTopic(name)) return undefined;
    if (this.#settings.autoCreateTopics) return this.#create(name, call);
    try {
      return this.#topics.get(name);
    } catch (error) {
      // An invalid name cannot exist; to a reader it is simply not there.
      if (InvalidArgumentError.is(error)) return undefined;
      throw error;
    }
  }
}

function epochParam(query: URLSearchParams): string | undefined {
  const epoch = singleParam(query, 'epoch');
  if (epoch === undefined || epoch === '') return undefined;
  if (epoch.length > 128) throw new InvalidArgumentError('epoch is too long', 'epoch');
  return epoch;
}

function topicNotFound(name: string): PollkitResponse {
  return problemResponse(problem('topic-not-found', `No topic ${clip(name)} is visible to this caller.`));
}
