/**
 * A terminal chat client: prints the room as it grows (long polling, or `--websocket`) and posts each
 * line typed on stdin.
 *
 * `node --import tsx examples/chat/cli.ts http://127.0.0.1:3000/ lobby ada [--websocket]`
 *
 * @module
 */
import { createInterface } from 'node:readline';
import WebSocket from 'ws';
import type { WebSocketConstructor } from 'pollkit/client';
import { joinRoom } from './client.js';
import { isMain } from '../shared/serve.js';

if (isMain(import.meta.url)) {
  const [baseUrl, room = 'lobby', name = 'cli', flag] = process.argv.slice(2);
  if (baseUrl === undefined) {
    console.error('usage: cli.ts <server url> [room] [name] [--websocket]');
    process.exit(2);
  }
  const chat = joinRoom({
    baseUrl,
    room,
    name,
    transport: flag === '--websocket' ? 'websocket' : 'long-poll',
    WebSocket: WebSocket as unknown as WebSocketConstructor,
    onMessage: ({ offset, value }) => console.log(`#${offset} ${value.from}: ${value.text}`),
    onReconnecting: (reason) => console.error(`(reconnecting: ${reason})`),
  });
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    if (line.trim() !== '') chat.send(line).catch((error: unknown) => console.error(`(not sent: ${String(error)})`));
  });
  lines.on('close', () => chat.close());
}
