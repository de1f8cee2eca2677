/**
 * The notifications page: the same stream through `EventSource` and through pollkit's `Subscriber`.
 * What each one received is also kept in `window.__notifications`, which the browser test reads.
 *
 * @module
 */
import { SseTransport, Subscriber, type TopicRecord } from 'pollkit/client';
import type { Notification } from './server.js';

const url = `${window.location.origin}/pollkit/topics/notifications/events`;
const seen = { native: [] as number[], pollkit: [] as number[], opens: { native: 0, pollkit: 0 } };
(window as unknown as { __notifications: typeof seen }).__notifications = seen;

function show(list: 'native' | 'pollkit', record: TopicRecord<Notification>): void {
  seen[list].push(record.offset);
  const item = document.createElement('li');
  item.className = record.value.level;
  item.textContent = `#${record.offset} ${record.value.text}`;
  document.getElementById(list)!.prepend(item);
}

function state(list: 'native' | 'pollkit', text: string): void {
  document.getElementById(`${list}-state`)!.textContent = text;
}

// The browser's EventSource reconnects by itself after the stream's `retry:` and sends Last-Event-ID.
const source = new EventSource(url);
source.addEventListener('open', () => {
  seen.opens.native++;
  state('native', `open (connection ${seen.opens.native})`);
});
source.addEventListener('error', () => state('native', 'reconnecting…'));
source.addEventListener('message', (event) => show('native', JSON.parse(event.data) as TopicRecord<Notification>));

// pollkit's Subscriber adds jittered backoff, an idle watchdog fed by the heartbeats, and deduplication.
const subscriber = new Subscriber<TopicRecord<Notification>>({
  transports: new SseTransport({ url, decode: (data) => JSON.parse(data) as TopicRecord<Notification> }),
  idleTimeoutMs: 15_000,
  spreadMs: 1000,
});
subscriber.on('open', ({ attempt }) => {
  seen.opens.pollkit++;
  state('pollkit', `open (connection ${seen.opens.pollkit}, attempt ${attempt})`);
});
subscriber.on('reconnecting', ({ delayMs, reason }) => state('pollkit', `reconnecting in ${delayMs} ms (${reason})`));
subscriber.on('message', ({ data }) => show('pollkit', data));
subscriber.start();

window.addEventListener('pagehide', () => {
  source.close();
  subscriber.close();
});
