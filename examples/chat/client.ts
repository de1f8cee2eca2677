/**
 * Joining a chat room, the same way in the browser and in Node: read the room's topic from an offset
 * — by long polling or over a reconnecting WebSocket — and post to it. Both readers resume from the
 * last offset they delivered, so a dropped connection or a server restart neither skips nor repeats
 * a message.
 *
 * @module
 */
import {
  HttpError,
  Subscriber,
  TopicClient,
  type TopicRecord,
  type WebSocketConstructor,
  WebSocketTransport,
  backoff,
  consumeTopic,
  retry,
} from 'pollkit/client';

/** One chat message, as stored in the room's topic. */
export interface ChatMessage {
  /** Chosen by the sender, so a message sent twice (a retry after a cut) is shown once. */
  readonly id: string;
  readonly from: string;
  readonly text: string;
}

/** How a client reads the room. */
export type ChatTransport = 'long-poll' | 'websocket';

/** Options for {@link joinRoom}. */
export interface JoinRoomOptions {
  /** The chat server's base URL, e.g. `http://127.0.0.1:3000/`. Required. */
  readonly baseUrl: string;
  /** The room's name (letters, digits, `.`, `_`, `-`). Required. */
  readonly room: string;
  /** Who is speaking. Required. */
  readonly name: string;
  /** How to read the room. Default `'long-poll'`. */
  readonly transport?: ChatTransport;
  /** The WebSocket class (Node 20 has none built in: pass `ws`'s). Default `globalThis.WebSocket`. */
  readonly WebSocket?: WebSocketConstructor;
  /** The first offset to read. Default `0` (the whole history). */
  readonly fromOffset?: number;
  /** Called once per message, in offset order; a retried send that was stored twice is shown once. Required. */
  readonly onMessage: (message: TopicRecord<ChatMessage>) => void;
  /** Called when the connection drops and is being re-established. Default: nothing. */
  readonly onReconnecting?: (reason: string) => void;
}

/** A joined room. */
export interface ChatRoom {
  /** Posts a message; resolves with its offset. */
  send(text: string): Promise<number>;
  /** Leaves the room. */
  close(): void;
}

/**
 * Joins a room.
 *
 * @example
 * ```ts
 * const room = joinRoom({ baseUrl: 'http://127.0.0.1:3000/', room: 'lobby', name: 'ada', onMessage: (m) => console.log(m.value.text) });
 * await room.send('hello');
 * ```
 */
export function joinRoom(options: JoinRoomOptions): ChatRoom {
  const topic = `room.${options.room}`;
  const topics = new TopicClient({ baseUrl: options.baseUrl });
  // A send that failed before any answer (a connection cut, a server restarting) is tried again. It
  // may have been stored after all, so the message id lets readers drop the second copy.
  const send = (text: string): Promise<number> => {
    const message: ChatMessage = { id: globalThis.crypto.randomUUID(), from: options.name, text };
    return retry(() => topics.append(topic, message), {
      retries: 4,
      policy: backoff({ initial: 100, max: 1000 }),
      shouldRetry: ({ error }) => !HttpError.is(error),
    });
  };
  const seen = new Set<string>();
  const deliver = (record: TopicRecord<ChatMessage>): void => {
    if (seen.has(record.value.id)) return;
    seen.add(record.value.id);
    if (seen.size > 10_000) seen.delete(seen.values().next().value as string);
    options.onMessage(record);
  };

  if ((options.transport ?? 'long-poll') === 'long-poll') {
    const poller = consumeTopic<ChatMessage>(topics.topicUrl(topic), { offset: options.fromOffset ?? 0 });
    poller.on('data', (records) => records.forEach(deliver));
    poller.on('error', (error) => options.onReconnecting?.(String(error)));
    poller.start();
    return { send, close: () => poller.stop() };
  }

  // The subscriber's cursor is the offset of the last message dispatched; the socket resumes after it.
  const wsBase = topics.topicUrl(topic).replace(/^http/, 'ws');
  const first = options.fromOffset ?? 0;
  const subscriber = new Subscriber<TopicRecord<ChatMessage>>({
    transports: new WebSocketTransport<TopicRecord<ChatMessage>>({
      url: (cursor) => `${wsBase}/ws?offset=${cursor === undefined ? first : Number(cursor) + 1}`,
      decode: (text) => JSON.parse(text) as TopicRecord<ChatMessage>,
      idOf: (record) => String(record.offset),
      ...(options.WebSocket === undefined ? {} : { WebSocket: options.WebSocket }),
    }),
    // A restart of a small server is short: start trying again soon.
    spreadMs: 500,
  });
  subscriber.on('message', ({ data }) => deliver(data));
  subscriber.on('reconnecting', ({ reason }) => options.onReconnecting?.(reason));
  subscriber.start();
  return { send, close: () => subscriber.close() };
}
