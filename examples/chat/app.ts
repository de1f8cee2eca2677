/**
 * The chat page: `?room=lobby&name=ada&transport=long-poll|websocket`.
 *
 * @module
 */
import { type ChatTransport, joinRoom } from './client.js';

const params = new URLSearchParams(window.location.search);
const room = params.get('room') ?? 'lobby';
const name = params.get('name') ?? `guest-${Math.floor(Math.random() * 1000)}`;
const transport: ChatTransport = params.get('transport') === 'websocket' ? 'websocket' : 'long-poll';

const element = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
element('room').textContent = room;
element('transport').textContent = transport === 'websocket' ? 'WebSocket' : 'long polling';
for (const choice of ['long-poll', 'websocket'] as const) {
  const link = element<HTMLAnchorElement>(`as-${choice}`);
  const next = new URLSearchParams(params);
  next.set('transport', choice);
  next.set('name', name);
  link.href = `?${next.toString()}`;
}

const list = element<HTMLUListElement>('messages');
const state = element('state');
const chat = joinRoom({
  baseUrl: window.location.origin,
  room,
  name,
  transport,
  onMessage: ({ offset, value }) => {
    const item = document.createElement('li');
    item.dataset['offset'] = String(offset);
    const label = document.createElement('span');
    label.className = 'offset';
    label.textContent = `#${offset}`;
    item.append(label, `${value.from}: ${value.text}`);
    list.append(item);
    list.scrollTop = list.scrollHeight;
    state.textContent = `connected as ${name}`;
  },
  onReconnecting: (reason) => {
    state.textContent = `reconnecting (${reason})…`;
  },
});
state.textContent = `connected as ${name}`;

const input = element<HTMLInputElement>('text');
element<HTMLFormElement>('form').addEventListener('submit', (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (text === '') return;
  input.value = '';
  chat.send(text).catch((error: unknown) => {
    state.textContent = `not sent: ${String(error)}`;
    input.value = text;
  });
});
window.addEventListener('pagehide', () => chat.close());
