/**
 * A scriptable in-memory transport for the subscriber's unit tests: every connection is recorded and
 * driven by hand (open, message, close), and the fake counts what is still alive so leak tests can
 * assert that nothing outlives its connection.
 */
import type {
  ConnectRequest,
  Transport,
  TransportClose,
  TransportConnection,
  TransportSink,
} from '../../src/client/transports/transport.js';

export class FakeConnection {
  readonly sent: string[] = [];
  pings = 0;
  bufferedAmount = 0;
  closedByClient = false;
  closedByServer = false;
  readonly request: ConnectRequest;
  readonly sink: TransportSink<string>;

  constructor(request: ConnectRequest, sink: TransportSink<string>) {
    this.request = request;
    this.sink = sink;
  }

  get cursor(): string | undefined {
    return this.request.cursor;
  }

  get done(): boolean {
    return this.closedByClient || this.closedByServer;
  }

  open(): this {
    this.sink.opened();
    return this;
  }

  message(data: string, id?: string, event?: string): this {
    this.sink.message({ data, id, event });
    return this;
  }

  activity(): this {
    this.sink.activity();
    return this;
  }

  close(close: TransportClose = { reason: 'network' }): void {
    this.closedByServer = true;
    this.sink.closed(close);
  }
}

export interface FakeTransportOptions {
  readonly name?: string;
  readonly canSend?: boolean;
  readonly heartbeats?: boolean;
  readonly ping?: boolean;
  /** Runs synchronously inside connect (e.g. to open or fail at once). */
  readonly onConnect?: (connection: FakeConnection) => void;
}

export class FakeTransport implements Transport<string> {
  readonly name: string;
  readonly canSend: boolean;
  readonly connections: FakeConnection[] = [];
  readonly #options: FakeTransportOptions;
  /** Connections whose `signal` still has our abort listener. */
  liveSignals = 0;

  constructor(options: FakeTransportOptions = {}) {
    this.name = options.name ?? 'fake';
    this.canSend = options.canSend ?? true;
    this.#options = options;
  }

  get last(): FakeConnection {
    const last = this.connections.at(-1);
    if (last === undefined) throw new Error('no connection yet');
    return last;
  }

  /** Connections neither closed by the server side nor by the subscriber. */
  get alive(): number {
    return this.connections.filter((c) => !c.done).length;
  }

  connect(request: ConnectRequest, sink: TransportSink<string>): TransportConnection {
    const connection = new FakeConnection(request, sink);
    this.connections.push(connection);
    this.liveSignals++;
    const onAbort = (): void => {
      this.liveSignals--;
      connection.closedByClient = true;
    };
    request.signal.addEventListener('abort', onAbort, { once: true });
    const handle: TransportConnection = {
      heartbeats: this.#options.heartbeats ?? false,
      get bufferedAmount() {
        return connection.bufferedAmount;
      },
      ...(this.canSend ? { send: (data: string) => void connection.sent.push(data) } : {}),
      ...(this.#options.ping === true ? { ping: () => void connection.pings++ } : {}),
      close: () => {
        connection.closedByClient = true;
      },
    };
    this.#options.onConnect?.(connection);
    return handle;
  }
}
