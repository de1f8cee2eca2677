/**
 * A topic consumed in one call: the transports chosen (`auto`: WebSocket where there is a WebSocket
 * class, then SSE, then long polling) and wired from the protocol, so the URLs, the JSON decoding, the
 * record ids and the resume cursor (offset of the last record delivered; the next connection starts
 * one past it) are right without writing any of them.
 *
 * @module
 */
import { parseTopicEventId, type TopicRecord } from '../core/protocol.js';
import { endpoints } from './endpoints.js';
import type { FetchFunction } from './http.js';
import { TopicClient } from './http.js';
import { Subscriber, type SubscriberOptions } from './subscriber.js';
import { LongPollTransport } from './transports/long-poll.js';
import { SseTransport } from './transports/sse.js';
import type { Transport } from './transports/transport.js';
import { type WebSocketConstructor, WebSocketTransport } from './transports/websocket.js';
import { InvalidArgumentError } from '../core/errors.js';

/** A transport by name. */
export type TopicTransportName = 'websocket' | 'sse' | 'long-poll';

/** Options for {@link subscribeTopic}; the rest are the {@link Subscriber}'s. */
export interface SubscribeTopicOptions extends Omit<SubscriberOptions<TopicRecord>, 'transports' | 'cursor'> {
  /**
   * Which transports, in order of preference: `"auto"`, one name, or a list. `"auto"` is WebSocket
   * (when a WebSocket class is available), SSE, then long polling. Default `"auto"`.
   */
  readonly transport?: 'auto' | TopicTransportName | readonly TopicTransportName[];
  /** The first offset to read when there is no cursor. Default `0`. */
  readonly offset?: number;
  /** Resume after this record: the `cursor` of a `commit` event (an offset as a string). Default none. */
  readonly cursor?: string;
  /** Headers for SSE and long polling (a browser WebSocket cannot send any). Default none. */
  readonly headers?: Readonly<Record<string, string>> | (() => Readonly<Record<string, string>>);
  /** `fetch` for SSE and long polling. Default `globalThis.fetch` at call time. */
  readonly fetch?: FetchFunction;
  /** Send cookies to another origin (`fetch`'s `credentials`) over SSE. Default the browser's (`same-origin`). */
  readonly credentials?: RequestCredentials;
  /** The WebSocket class. Default `globalThis.WebSocket` (browsers, Node 22+); pass `ws`'s on older Node. */
  readonly WebSocket?: WebSocketConstructor;
  /** The server-side wait of a long poll, in milliseconds. Default `25000`. */
  readonly waitMs?: number;
}

const names: readonly TopicTransportName[] = ['websocket', 'sse', 'long-poll'];

/**
 * The transports an option names, in order; `auto` keeps those `available` says can work here.
 *
 * @internal
 */
export function chooseTransports<Name extends string>(
  choice: 'auto' | Name | readonly Name[] | undefined,
  all: readonly Name[],
  available: (name: Name) => boolean,
): readonly Name[] {
  if (choice === undefined || choice === 'auto') return all.filter(available);
  const list = typeof choice === 'string' ? [choice] : choice;
  for (const name of list) {
    if (!all.includes(name)) {
      throw new InvalidArgumentError(
        `transport must be "auto" or one of ${all.join(', ')}, got ${String(name)}`,
        'transport',
      );
    }
  }
  if (list.length === 0) throw new InvalidArgumentError('transport needs at least one name', 'transport');
  return list;
}

/**
 * A {@link Subscriber} of the topic at `url` (`https://host/prefix/topics/<name>`), with transports
 * built from the protocol. Messages carry {@link TopicRecord}s in offset order, each once; the cursor
 * (`subscriber.cursor`, the `commit` event) is the offset of the last record delivered. WebSocket
 * liveness is checked by default: pollkit's server answers the `ping` sent every `pingIntervalMs`.
 *
 * Throws {@link InvalidArgumentError} for a URL that is not a topic's, an unknown transport name, or a
 * negative or fractional `offset`.
 *
 * @example
 * ```ts
 * import { subscribeTopic } from 'pollkit/client';
 *
 * const orders = subscribeTopic<{ id: string }>('https://api.example.com/pollkit/topics/orders', {
 *   offset: 0,
 * });
 * orders.on('message', ({ data: record }) => console.log(record.offset, record.value.id));
 * orders.on('commit', ({ cursor }) => localStorage.setItem('orders-cursor', cursor));
 * orders.start();
 * ```
 */
export function subscribeTopic<Value = unknown>(
  url: string | URL,
  options: SubscribeTopicOptions = {},
): Subscriber<TopicRecord<Value>> {
  const { transport, offset = 0, cursor, headers, fetch, credentials, WebSocket, waitMs, ...rest } = options;
  if (!(Number.isSafeInteger(offset) && offset >= 0)) {
    throw new InvalidArgumentError(`offset must be an integer >= 0, got ${String(offset)}`, 'offset');
  }
  const at = endpoints(url, 'topics');
  const Socket = WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  const decode = (text: string): TopicRecord<Value> => JSON.parse(text) as TopicRecord<Value>;
  // A cursor is an offset, or `<offset>@<epoch>` when it came from SSE.
  const next = (c: string | undefined): number => {
    const at = c === undefined ? undefined : parseTopicEventId(c);
    return at === undefined ? offset : at.offset + 1;
  };
  const build = (name: TopicTransportName): Transport<TopicRecord<Value>> => {
    if (name === 'websocket') {
      return new WebSocketTransport<TopicRecord<Value>>({
        url: (c) => at.ws('/ws', { offset: next(c) }),
        ...(Socket === undefined ? {} : { WebSocket: Socket }),
        decode,
        idOf: (record) => String(record.offset),
        ping: { message: 'ping', isPong: (text) => text === 'pong' },
      });
    }
    if (name === 'sse') {
      return new SseTransport<TopicRecord<Value>>({
        // Last-Event-ID (the cursor) wins over ?offset on the server, so one URL serves every connection.
        url: at.http('/events', { offset }),
        decode,
        events: ['message'],
        ...(headers === undefined ? {} : { headers }),
        ...(fetch === undefined ? {} : { fetch }),
        ...(credentials === undefined ? {} : { init: { credentials } }),
      });
    }
    const client = new TopicClient({
      baseUrl: at.baseUrl,
      prefix: at.prefix,
      ...(headers === undefined ? {} : { headers }),
      ...(fetch === undefined ? {} : { fetch }),
    });
    return new LongPollTransport<Value>({
      client,
      topic: at.name,
      startOffset: offset,
      ...(waitMs === undefined ? {} : { waitMs }),
    });
  };
  const chosen = chooseTransports(transport, names, (name) => name !== 'websocket' || Socket !== undefined);
  return new Subscriber<TopicRecord<Value>>({
    ...rest,
    transports: chosen.map(build),
    ...(cursor === undefined ? {} : { cursor }),
  });
}
