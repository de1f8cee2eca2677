/**
 * Chat: one topic per room (`room.<name>`), read by long polling or over a WebSocket, written by a
 * plain POST. The room logs live in a JSON file ({@link JsonFileTopicStore}), so a restarted server
 * picks up the same logs with the same epochs and offsets, and the clients carry on where they were.
 * The restart test stops the whole server — registry, store and listener — and starts a new one on
 * the same file and port: nothing survives in memory.
 *
 * Run it: `node --import tsx examples/chat/server.ts`, open the printed URL in two tabs, or chat from
 * a terminal with `node --import tsx examples/chat/cli.ts http://127.0.0.1:3000/ lobby ada`.
 *
 * @module
 */
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocketServer } from 'ws';
import { PollkitHandler, TopicRegistry } from 'pollkit/server';
import { createNodeListener } from 'pollkit/node';
import { PollkitWebSocketServer } from 'pollkit/ws';
import { JsonFileTopicStore } from './file-store.js';
import { type ListenOptions, type Running, isMain, listen, pageRoute } from '../shared/serve.js';

/** Options for {@link start}. */
export interface ChatServerOptions extends ListenOptions {
  /** Where the room logs are kept. Default `pollkit-chat.json` in the system's temporary directory. */
  readonly dataFile?: string;
  /** How many messages each room keeps. Default `1000`. */
  readonly historySize?: number;
}

/**
 * Starts the chat server.
 *
 * @example
 * ```ts
 * const { url, close } = await start({ port: 0, dataFile: '/tmp/chat.json' });
 * ```
 */
export async function start(options: ChatServerOptions = {}): Promise<Running> {
  const store = new JsonFileTopicStore(options.dataFile ?? join(tmpdir(), 'pollkit-chat.json'));
  const topics = new TopicRegistry({ store, retention: { maxRecords: options.historySize ?? 1000 } });
  const rooms = (topic: string): boolean => topic.startsWith('room.');
  const handler = new PollkitHandler({
    topics,
    autoCreateTopics: true,
    // Anyone may read and post, but only to rooms: other topics stay invisible (404).
    authorize: () => ({ canReadTopic: rooms, canAppendTopic: rooms }),
  });
  const page = pageRoute(new URL('.', import.meta.url));
  const server = createServer(
    createNodeListener(handler, {
      onUnmatched: (req, res) => {
        page(req, res).then(
          (served) => served || res.writeHead(404, { 'content-type': 'text/plain' }).end('not found'),
          (error: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(String(error)),
        );
      },
    }),
  );
  const sockets = new PollkitWebSocketServer(new WebSocketServer({ noServer: true }), handler);
  server.on('upgrade', (request, socket, head) => {
    if (!sockets.handleUpgrade(request, socket, head)) socket.destroy();
  });
  const listening = await listen(server, options);
  return {
    url: listening.url,
    close: async () => {
      await sockets.close();
      await handler.close();
      await topics.close();
      await listening.close();
    },
  };
}

if (isMain(import.meta.url)) {
  const { url, close } = await start({ port: Number(process.env['PORT'] ?? 3000) });
  console.log(`chat: open ${url}?room=lobby&name=ada (add &transport=websocket for the push variant)`);
  process.once('SIGINT', () => void close().then(() => process.exit(0)));
}
