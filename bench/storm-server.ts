/**
 * The server side of the real-socket storm (bench/storm.ts), in a child process so that the clients'
 * work does not delay its accepts: pollkit's handler with a topic over SSE and WebSocket on a fixed
 * port. The parent says `down` (every connection cut, the port closed) and `up` (listening again);
 * the child counts each request and upgrade it accepts, with its time, and reports them.
 */
import { createServer } from 'node:http';
import type { Socket } from 'node:net';
import { WebSocketServer } from 'ws';
import { createNodeListener } from '../src/adapters/node.js';
import { PollkitWebSocketServer } from '../src/adapters/ws.js';
import { PollkitHandler, TopicRegistry } from '../src/server/index.js';

const port = Number(process.argv[2]);
const topics = new TopicRegistry();
await topics.topic('storm').append('hello');
const handler = new PollkitHandler({
  topics,
  autoCreateTopics: true,
  maxHeldRequests: 100_000,
  maxHeldPerCaller: 100_000,
});
const listener = createNodeListener(handler);
const arrivals: number[] = [];
const server = createServer((request, response) => {
  arrivals.push(Date.now());
  listener(request, response);
});
const wss = new WebSocketServer({ noServer: true });
const sockets = new PollkitWebSocketServer(wss, handler);
const open = new Set<Socket>();
server.on('connection', (socket: Socket) => {
  open.add(socket);
  socket.on('close', () => open.delete(socket));
});
server.on('upgrade', (request, socket, head) => {
  arrivals.push(Date.now());
  if (!sockets.handleUpgrade(request, socket, head)) socket.destroy();
});
server.keepAliveTimeout = 60_000;

function listen(): Promise<void> {
  return new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
}

process.on('message', (message: { op: string }) => {
  if (message.op === 'down') {
    server.close();
    for (const client of wss.clients) client.terminate();
    for (const socket of open) socket.destroy();
    process.send!({ op: 'down', at: Date.now() });
  } else if (message.op === 'up') {
    arrivals.length = 0;
    void listen().then(() => process.send!({ op: 'up', at: Date.now() }));
  } else if (message.op === 'arrivals') {
    process.send!({ op: 'arrivals', arrivals });
  } else if (message.op === 'exit') {
    process.exit(0);
  }
});
await listen();
process.send!({ op: 'ready' });
