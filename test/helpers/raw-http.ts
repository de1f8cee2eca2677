/**
 * A bare HTTP/1.1 client over one `net` socket: one request at a time on one keep-alive connection,
 * answers framed by `Content-Length`, and a hang-up that is exactly a closed socket. For tests that
 * need to know which connection a request used (fetch pools its connections).
 */
import net from 'node:net';

/** One answer. */
export interface RawAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/** A keep-alive connection to a test server. */
export class RawConnection {
  readonly #socket: net.Socket;
  #buffer = Buffer.alloc(0);
  #waiting: { resolve: (answer: RawAnswer) => void; reject: (error: Error) => void } | undefined;

  private constructor(socket: net.Socket) {
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
      this.#parse();
    });
    socket.on('close', () => this.#fail(new Error('connection closed')));
    socket.on('error', (error) => this.#fail(error));
  }

  /** Connects to `url` (`http://host:port`). */
  static connect(url: string): Promise<RawConnection> {
    const { hostname, port } = new URL(url);
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: hostname, port: Number(port) }, () => resolve(new RawConnection(socket)));
      socket.once('error', reject);
    });
  }

  /** Sends `GET path` and resolves with the answer; rejects if the connection closes first. */
  get(path: string): Promise<RawAnswer> {
    return new Promise((resolve, reject) => {
      this.#waiting = { resolve, reject };
      this.#socket.write(`GET ${path} HTTP/1.1\r\nhost: test\r\naccept: application/json\r\n\r\n`);
    });
  }

  /** Hangs up. */
  destroy(): void {
    this.#socket.destroy();
  }

  #fail(error: Error): void {
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.reject(error);
  }

  #parse(): void {
    const end = this.#buffer.indexOf('\r\n\r\n');
    if (end < 0) return;
    const lines = this.#buffer.toString('latin1', 0, end).split('\r\n');
    const status = Number(lines[0]!.slice(9, 12));
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const length = Number(headers['content-length'] ?? 0);
    if (this.#buffer.length < end + 4 + length) return;
    const body = this.#buffer.toString('utf8', end + 4, end + 4 + length);
    this.#buffer = this.#buffer.subarray(end + 4 + length);
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.resolve({ status, headers, body });
  }
}

/** How many listeners `emitter` has for each event, for before/after comparisons. */
export function listenerCounts(emitter: NodeJS.EventEmitter): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const name of emitter.eventNames()) counts[String(name)] = emitter.listenerCount(name);
  return counts;
}
