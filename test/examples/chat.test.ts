import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { TopicRecord, WebSocketConstructor } from 'pollkit/client';
import { type ChatMessage, type ChatRoom, type ChatTransport, joinRoom } from '../../examples/chat/client.js';
import { start } from '../../examples/chat/server.js';
import type { Running } from '../../examples/shared/serve.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
let dir: string;
let server: Running | undefined;
const rooms: ChatRoom[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'pollkit-chat-'));
});
afterEach(async () => {
  for (const room of rooms.splice(0)) room.close();
  await server?.close();
  server = undefined;
  rmSync(dir, { recursive: true, force: true });
});

/** Joins a room and collects what arrives. */
function reader(
  url: string,
  transport: ChatTransport,
  name: string,
): { received: TopicRecord<ChatMessage>[]; room: ChatRoom } {
  const received: TopicRecord<ChatMessage>[] = [];
  const room = joinRoom({
    baseUrl: url,
    room: 'lobby',
    name,
    transport,
    WebSocket: WebSocket as unknown as WebSocketConstructor,
    onMessage: (message) => received.push(message),
  });
  rooms.push(room);
  return { received, room };
}

async function until(condition: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('examples/chat', () => {
  it('delivers every message to a long-polling and a WebSocket reader, in order', async () => {
    server = await start({ dataFile: join(dir, 'chat.json') });
    const polling = reader(server.url, 'long-poll', 'ada');
    const pushed = reader(server.url, 'websocket', 'bob');
    for (const text of ['hello', 'hi ada', 'how are you?']) await polling.room.send(text);
    await until(() => polling.received.length === 3 && pushed.received.length === 3);
    for (const { received } of [polling, pushed]) {
      expect(received.map((record) => record.offset)).toEqual([0, 1, 2]);
      expect(received.map(({ value }) => `${value.from}: ${value.text}`)).toEqual([
        'ada: hello',
        'ada: hi ada',
        'ada: how are you?',
      ]);
    }
  });

  it('keeps rooms apart and hides topics that are not rooms', async () => {
    server = await start({ dataFile: join(dir, 'chat.json') });
    const response = await fetch(new URL('/pollkit/topics/secrets/records?offset=0', server.url));
    expect(response.status).toBe(404);
    const append = await fetch(new URL('/pollkit/topics/room.lobby/records', server.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ value: { id: 'c1', from: 'curl', text: 'hi' } }),
    });
    expect(append.status).toBe(201);
  });

  it('survives a full server restart without losing or repeating a message', async () => {
    // Honest restart: the whole server (registry, store, listener) goes away; only the JSON file stays.
    const dataFile = join(dir, 'chat.json');
    server = await start({ dataFile });
    const port = Number(new URL(server.url).port);
    const polling = reader(server.url, 'long-poll', 'ada');
    const pushed = reader(server.url, 'websocket', 'bob');
    await polling.room.send('before 1');
    await polling.room.send('before 2');
    await until(() => polling.received.length === 2 && pushed.received.length === 2);

    await server.close();
    server = await start({ dataFile, port });
    await pushed.room.send('after 1');
    await pushed.room.send('after 2');
    await until(() => polling.received.length >= 4 && pushed.received.length >= 4);
    await new Promise((resolve) => setTimeout(resolve, 300)); // room for a late duplicate to show up

    for (const { received } of [polling, pushed]) {
      // Offsets rise strictly: nothing was delivered twice, nothing out of order.
      const offsets = received.map((record) => record.offset);
      expect(offsets.slice(0, 2)).toEqual([0, 1]);
      expect(offsets.every((offset, index) => index === 0 || offset > offsets[index - 1]!)).toBe(true);
      expect(received.map((record) => record.value.text)).toEqual(['before 1', 'before 2', 'after 1', 'after 2']);
    }
    // A newcomer after the restart reads the history from the file.
    const late = reader(server.url, 'long-poll', 'cy');
    await until(() => late.received.length === 4);
  });

  it('chats from the terminal client', async () => {
    server = await start({ dataFile: join(dir, 'chat.json') });
    const listener = reader(server.url, 'long-poll', 'ada');
    const cli = spawn(process.execPath, ['--import', 'tsx', 'examples/chat/cli.ts', server.url, 'lobby', 'term'], {
      cwd: root,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let output = '';
    cli.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    try {
      cli.stdin.write('typed in a terminal\n');
      await until(() => listener.received.length === 1);
      expect(listener.received[0]?.value).toMatchObject({ from: 'term', text: 'typed in a terminal' });
      await listener.room.send('seen in the terminal');
      await until(() => output.includes('ada: seen in the terminal'));
      expect(output).toContain('#0 term: typed in a terminal');
    } finally {
      cli.kill();
    }
  });
});
