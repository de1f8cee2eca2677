/**
 * A TCP proxy on port 0 that cuts connections at random byte offsets of the server-to-client stream,
 * to prove that a subscriber neither loses nor repeats messages whatever the moment of the cut. A
 * share of the cuts is aimed just after an SSE `id:` line, before the end of its event: the exact spot
 * where a client that commits the id at the `id:` line (rather than at dispatch) skips an event.
 *
 * Randomness is seeded, so a failing run can be replayed with the same seed.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { seededRandom } from '../../src/core/clock.js';

export interface ChaosProxyOptions {
  /** Where to forward. */
  readonly targetPort: number;
  readonly targetHost?: string;
  /** Seed for the cut positions. Default 1. */
  readonly seed?: number;
  /** Each connection is cut after a uniform number of server bytes in [minBytes, maxBytes]. Defaults 1 and 2048. */
  readonly minBytes?: number;
  readonly maxBytes?: number;
  /**
   * The share of connections cut right after the first `id:` line past `minBytes` (or at their byte
   * budget, whichever comes first: WebSocket and JSON streams have no `id:` lines). Default 0.3.
   */
  readonly idLineShare?: number;
  /** Stop cutting after this many cuts (then forward faithfully). Default Infinity. */
  readonly maxCuts?: number;
}

export interface ChaosProxy {
  readonly port: number;
  readonly url: string;
  readonly wsUrl: string;
  /** Connections cut so far. */
  readonly cuts: number;
  /** Of which right after an `id:` line. */
  readonly idLineCuts: number;
  /** Turn cutting on or off (on at start). */
  setCutting(on: boolean): void;
  close(): Promise<void>;
}

const ID_LINE = Buffer.from('id:');

export async function startChaosProxy(options: ChaosProxyOptions): Promise<ChaosProxy> {
  const random = seededRandom(options.seed ?? 1);
  const minBytes = options.minBytes ?? 1;
  const maxBytes = options.maxBytes ?? 2048;
  const idLineShare = options.idLineShare ?? 0.3;
  const maxCuts = options.maxCuts ?? Number.POSITIVE_INFINITY;
  const host = options.targetHost ?? '127.0.0.1';
  const open = new Set<Socket>();
  let cuts = 0;
  let idLineCuts = 0;
  let cutting = true;

  const track = (socket: Socket): void => {
    // Nagle's algorithm would hold small SSE writes back for tens of milliseconds per connection.
    socket.setNoDelay(true);
    open.add(socket);
    socket.once('close', () => open.delete(socket));
    socket.on('error', () => {});
  };

  const server: Server = createServer((client) => {
    track(client);
    const upstream = connect({ port: options.targetPort, host });
    track(upstream);
    const atIdLine = random() < idLineShare;
    const budget = minBytes + Math.floor(random() * (maxBytes - minBytes + 1));
    let forwarded = 0;
    let done = false;
    const cut = (chunk: Buffer, at: number, byIdLine: boolean): void => {
      done = true;
      cuts++;
      if (byIdLine) idLineCuts++;
      if (at > 0) client.write(chunk.subarray(0, at));
      // Destroy after the partial write is flushed to the kernel, so the client does see those bytes.
      client.end(() => client.destroy());
      upstream.destroy();
    };
    upstream.on('data', (chunk: Buffer) => {
      if (done) return;
      const armed = cutting && cuts < maxCuts;
      if (armed && atIdLine && forwarded + chunk.length > minBytes) {
        const from = Math.max(0, minBytes - forwarded);
        const index = chunk.indexOf(ID_LINE, from);
        const lineEnd = index < 0 ? -1 : chunk.indexOf(0x0a, index);
        if (lineEnd >= 0) {
          cut(chunk, lineEnd + 1, true);
          return;
        }
      }
      if (armed && forwarded + chunk.length > budget) {
        cut(chunk, budget - forwarded, false);
        return;
      }
      forwarded += chunk.length;
      client.write(chunk);
    });
    client.on('data', (chunk: Buffer) => {
      if (!done) upstream.write(chunk);
    });
    const end = (): void => {
      client.destroy();
      upstream.destroy();
    };
    upstream.on('close', end);
    client.on('close', end);
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}`,
    get cuts() {
      return cuts;
    },
    get idLineCuts() {
      return idLineCuts;
    },
    setCutting(on: boolean): void {
      cutting = on;
    },
    close: async () => {
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
