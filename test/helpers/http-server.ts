/**
 * Real HTTP servers on port 0 with tracked sockets, so a test can count open connections and close a
 * server without waiting for keep-alive clients, plus the "start this handler" factories the
 * conformance suite runs against.
 */
import { type Server, createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { serve } from '@hono/node-server';
import { createFetchHandler } from '../../src/adapters/fetch.js';
import { createNodeListener } from '../../src/adapters/node.js';
import type { PollkitHandler } from '../../src/server/http/handler.js';

/** A listening server. */
export interface TestServer {
  /** `http://127.0.0.1:<port>`, no trailing slash. */
  readonly url: string;
  /** Sockets currently open. */
  readonly sockets: ReadonlySet<Socket>;
  /** Destroys every socket and stops listening. */
  close(): Promise<void>;
}

/** Serves a pollkit handler on port 0; the conformance suite takes one of these per adapter. */
export type StartServer = (handler: PollkitHandler) => Promise<TestServer>;

/** Starts listening on 127.0.0.1:0 and tracks the server's sockets. */
export async function listen(server: Server): Promise<TestServer> {
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return track(server, sockets);
}

function track(server: Server, sockets: Set<Socket>): TestServer {
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    sockets,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** The `pollkit/node` listener on a plain `node:http` server. */
export const startNodeServer: StartServer = (handler) => listen(createServer(createNodeListener(handler)));

/** The web-standard fetch handler, served through `@hono/node-server` as a Node deployment would. */
export const startFetchServer: StartServer = async (handler) => {
  const fetch = createFetchHandler(handler);
  const sockets = new Set<Socket>();
  const server = await new Promise<Server>((resolve) => {
    const created = serve({ fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(created as Server));
    (created as Server).on('connection', (socket: Socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    });
  });
  return track(server, sockets);
};
