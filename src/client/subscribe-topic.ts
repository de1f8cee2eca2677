/**
 * A topic consumed in one call: the transports chosen (`auto`: WebSocket where there is a WebSocket
 * class, then SSE, then long polling) and wired from the protocol, so the URLs, the JSON decoding, the
 * record ids and the resume cursor (offset of the last record delivered; the next connection starts
 * one past it) are right without writing any of them.
 *
 * @module
 */
import { checkNumber, invalidOption } from '../core/checks.js';
import { parseTopicEventId, type TopicRecord } from '../core/protocol.js';
import { endpoints } from './endpoints.js';
import { type FetchFunction, TopicClient, type TopicClientOptions } from './http.js';
import { Subscriber, type SubscriberOptions } from './subscriber.js';
import { LongPollTransport, type LongPollTransportOptions } from './transports/long-poll.js';
import { SseTransport, type SseTransportOptions } from './transports/sse.js';
import type { Transport } from './transports/transport.js';
import {
  type WebSocketConstructor,
  WebSocketTransport,
  type WebSocketTransportOptions,
} from './transports/websocket.js';

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
  owner: string,
  choice: 'auto' | Name | readonly Name[] | undefined,
  all: readonly Name[],
  available: (name: Name) => boolean,
): readonly Name[] {
  if (choice === undefined || choice === 'auto') return all.filter(available);
  const list = typeof choice === 'string' ? [choice] : choice;
  if (list.length === 0 || list.some((name) => !all.includes(name))) {
    invalidOption(owner, 'transport', `"auto", or one or more of ${all.join(', ')}`, choice);
  }
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
  const { offset = 0, headers, fetch, credentials } = options;
  checkNumber('subscribeTopic', 'offset', offset, 0, 'integer');
  const at = endpoints(url, 'topics');
  const Socket = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  const decode = (text: string): TopicRecord<Value> => JSON.parse(text) as TopicRecord<Value>;
  const build = (name: TopicTransportName): Transport<TopicRecord<Value>> =>
    name === 'websocket'
      ? new WebSocketTransport<TopicRecord<Value>>({
          // A cursor is an offset, or `<offset>@<epoch>` when it came from SSE; resume one past it.
          url: (cursor) => {
            const last = cursor === undefined ? undefined : parseTopicEventId(cursor);
            return at.ws('/ws', { offset: last === undefined ? offset : last.offset + 1 });
          },
          WebSocket: Socket,
          decode,
          idOf: (record) => String(record.offset),
          ping: { message: 'ping', isPong: (text) => text === 'pong' },
        } as WebSocketTransportOptions<TopicRecord<Value>>)
      : name === 'sse'
        ? new SseTransport<TopicRecord<Value>>({
            // Last-Event-ID (the cursor) wins over ?offset on the server, so one URL serves every connection.
            url: at.http('/events', { offset }),
            decode,
            events: ['message'],
            headers,
            fetch,
            init: credentials && { credentials },
          } as SseTransportOptions<TopicRecord<Value>>)
        : new LongPollTransport<Value>({
            client: new TopicClient({ baseUrl: at.baseUrl, prefix: at.prefix, headers, fetch } as TopicClientOptions),
            topic: at.name,
            startOffset: offset,
            waitMs: options.waitMs,
          } as LongPollTransportOptions);
  const chosen = chooseTransports(
    'subscribeTopic',
    options.transport,
    names,
    (name) => name !== 'websocket' || Socket !== undefined,
  );
  // The rest of the options (cursor among them) are the subscriber's, by the same names.
  return new Subscriber<TopicRecord<Value>>({ ...options, transports: chosen.map(build) });
}
