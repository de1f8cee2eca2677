/**
 * The topic resource of the protocol: append, fetch (held until records arrive), and the topic's event
 * stream — each a method from a routed call to a response.
 *
 * @module
 */
import { InvalidArgumentError, OffsetGoneError, OffsetOutOfRangeError } from '../../core/errors.js';
import { HEADERS, type TopicFetchResult, type TopicRecord, problem } from '../../core/protocol.js';
import type { TopicPosition } from '../topics/stores/topic-store.js';
import type { Topic } from '../topics/topic.js';
import type { Call } from './caller.js';
import { ANSWERED_LATER, type RouteOutcome } from './exchange.js';
import { HeldTopicFetch } from './held-polls.js';
import { Held, type HeldRequests } from './holding.js';
import { clip, parseUnsignedInteger, singleParam } from './params.js';
import { errorToProblem, problemResponse } from './problems.js';
import { isPlainObject, readJsonBody } from './request-body.js';
import { fetchAnswer, isResponse, json } from './responses.js';
import type { HandlerSettings } from './settings.js';
import type { SseEvent } from './sse.js';
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
  /** The topic named `name`, created on first use. */
  topic(name: string): HandlerTopic;
  /** The topic named `name` if it exists. */
  get(name: string): HandlerTopic | undefined;
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
    const topic = this.#topics.topic(name);
    const offset = await topic.append(body['value'], key === undefined ? {} : { key });
    return json(201, { offset }, {});
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
    if (waitMs !== undefined && waitMs > 0) {
      const fetch = (topic as Partial<Pick<Topic, '_fetch'>>)._fetch;
      if (typeof fetch === 'function') {
        // Held as one object, the purgatory's operation, which writes its own answer. Only a read that
        // can be answered later takes a held slot; a gone or out-of-range offset fails at once.
        const held = new HeldTopicFetch(waitMs, call.exchange, this.#held, this.#held.keyOf(call));
        fetch.call(topic, held, offset, options);
        return ANSWERED_LATER;
      }
      return this.#holdWithPromises(topic, call, offset, options, waitMs);
    }
    return fetchAnswer(await topic.read(offset, options), waitMs);
  }

  /** A held read on a `HandlerTopic` that is not pollkit's own `Topic`: its promise API in a held slot. */
  async #holdWithPromises(
    topic: HandlerTopic,
    call: Call<Context>,
    offset: number,
    options: { limit: number; minRecords: number; epoch?: string },
    waitMs: number,
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
      return isResponse(held) ? held : fetchAnswer(held, waitMs);
    }
    return fetchAnswer(await topic.read(offset, options), waitMs);
  }

  /** `GET {p}/topics/{name}/events`: the topic's records as server-sent events. */
  async events(name: string, call: Call<Context>): Promise<PollkitResponse> {
    const { request, query } = call;
    const lastEventId = getHeader(request.headers, HEADERS.lastEventId);
    const offsetText = singleParam(query, 'offset');
    let from: number | undefined;
    // Last-Event-ID wins over ?offset: it is where a reconnecting EventSource actually stopped.
    if (lastEventId !== undefined && lastEventId.trim() !== '')
      from = parseUnsignedInteger(lastEventId, 'Last-Event-ID') + 1;
    else if (offsetText !== undefined) from = parseUnsignedInteger(offsetText, 'offset');
    const epoch = epochParam(query);
    const topic = this.#visibleTopic(name, call);
    if (topic === undefined) return topicNotFound(name);
    const position = await topic.position();
    from ??= position.highWatermark;
    if (from < position.earliestOffset || (epoch !== undefined && epoch !== position.epoch)) {
      throw new OffsetGoneError(name, from, position);
    }
    if (from > position.highWatermark) throw new OffsetOutOfRangeError(name, from, position.highWatermark);
    const entry = this.#held.enter(call);
    if (!(entry instanceof Held)) return entry;
    const signal = entry.signal;
    const start = from;
    async function* events(): AsyncGenerator<SseEvent> {
      try {
        for await (const record of topic!.subscribe(start, { signal, epoch: position.epoch })) {
          yield { id: String(record.offset), data: JSON.stringify(record) };
        }
      } catch (error) {
        if (signal.aborted) return;
        // Fell behind retention mid-stream: say so in-band; the reconnect then gets the 410.
        if (OffsetGoneError.is(error)) {
          yield { event: 'problem', data: JSON.stringify(errorToProblem(error).problem) };
          return;
        }
        throw error;
      }
    }
    return this.#held.stream(entry, call, events());
  }

  #visibleTopic(name: string, call: Call<Context>): HandlerTopic | undefined {
    if (call.caller?.canReadTopic !== undefined && !call.caller.canReadTopic(name)) return undefined;
    if (this.#settings.autoCreateTopics) return this.#topics.topic(name);
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
