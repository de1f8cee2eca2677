import { describe, expect, it } from 'vitest';
import { backoff, grpcBackoff } from '../../src/core/backoff.js';
import { ManualClock, seededRandom } from '../../src/core/clock.js';
import { InvalidArgumentError, isPollkitError } from '../../src/core/errors.js';
import {
  ReconnectSchedule,
  Subscriber,
  type ReconnectingEvent,
  type SubscriberMessage,
  type SubscriberOptions,
} from '../../src/client/subscriber.js';
import { FakeTransport } from '../helpers/fake-transport.js';

function setup(options: Partial<SubscriberOptions<string>> = {}, transport = new FakeTransport()) {
  const clock = new ManualClock({ seed: 7 });
  const subscriber = new Subscriber<string>({ transports: transport, clock, ...options });
  const reconnects: ReconnectingEvent[] = [];
  subscriber.on('reconnecting', (event) => reconnects.push(event));
  return { clock, subscriber, transport, reconnects };
}

describe('ReconnectSchedule', () => {
  it('spreads the first reconnect over [0, spreadMs] and then follows the curve from beyond the spread', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const schedule = new ReconnectSchedule({ random: seededRandom(seed) });
      const first = schedule.next();
      expect(first).toBeGreaterThanOrEqual(0);
      expect(first).toBeLessThanOrEqual(4600);
      // reconnectBackoff: 4600 four times, then × 1.25 per attempt up to 8000; ±2 % throughout.
      const curve = [4600, 4600, 4600, 4600, 5750, 7187.5, 8000, 8000];
      for (const expected of curve) {
        const delay = schedule.next();
        expect(delay).toBeGreaterThanOrEqual(expected * 0.98);
        expect(delay).toBeLessThanOrEqual(expected * 1.02);
      }
      expect(schedule.attempt).toBe(9);
    }
  });

  it('with spreadMs 0 is the backoff policy itself, jittered from the very first reconnect', () => {
    const delays = new Set<number>();
    for (let seed = 1; seed <= 50; seed++) {
      const schedule = new ReconnectSchedule({ spreadMs: 0, random: seededRandom(seed) });
      const first = schedule.next();
      expect(first).toBeGreaterThanOrEqual(4600 * 0.98);
      expect(first).toBeLessThanOrEqual(4600 * 1.02);
      delays.add(first);
    }
    expect(delays.size).toBe(50);
  });

  it('keeps a thousand simultaneous first reconnects at most 40 per 100 ms window', () => {
    const windows = new Map<number, number>();
    for (let seed = 1; seed <= 1000; seed++) {
      const at = new ReconnectSchedule({ random: seededRandom(seed * 7919) }).next();
      const window = Math.floor(at / 100);
      windows.set(window, (windows.get(window) ?? 0) + 1);
    }
    expect(Math.max(...windows.values())).toBeLessThanOrEqual(40);
  });

  it('honours a hint as a floor with jitter above it, and never below the computed delay', () => {
    const schedule = new ReconnectSchedule({ spreadMs: 0, random: seededRandom(3) });
    const hinted = schedule.next(5000);
    expect(hinted).toBeGreaterThanOrEqual(5000);
    expect(hinted).toBeLessThanOrEqual(6000);
    const unhinted = new ReconnectSchedule({ spreadMs: 0, random: seededRandom(3) });
    expect(unhinted.next(1)).toBeGreaterThanOrEqual(4600 * 0.98);
  });

  it('moves the whole spread window above a hint on the first reconnect', () => {
    const windows = new Map<number, number>();
    for (let seed = 1; seed <= 1000; seed++) {
      const at = new ReconnectSchedule({ random: seededRandom(seed * 104_729) }).next(3000);
      expect(at).toBeGreaterThanOrEqual(3000);
      expect(at).toBeLessThanOrEqual(7600);
      windows.set(Math.floor(at / 100), (windows.get(Math.floor(at / 100)) ?? 0) + 1);
    }
    // A 20 % band above the hint would put a thousand clients in 600 ms: over 160 per window.
    expect(Math.max(...windows.values())).toBeLessThanOrEqual(40);
  });

  it('starts over after reset', () => {
    const schedule = new ReconnectSchedule({ spreadMs: 0, backoff: backoff({ strategy: 'none', initial: 100 }) });
    expect([schedule.next(), schedule.next(), schedule.next()]).toEqual([100, 200, 400]);
    schedule.reset();
    expect(schedule.next()).toBe(100);
  });

  it('rejects invalid options', () => {
    expect(() => new ReconnectSchedule({ spreadMs: -1 })).toThrow(InvalidArgumentError);
    expect(() => new ReconnectSchedule({ hintSpread: Number.NaN })).toThrow(InvalidArgumentError);
  });
});

describe('Subscriber: options', () => {
  it('validates at construction', () => {
    const clock = new ManualClock();
    expect(() => new Subscriber({ transports: [], clock })).toThrow(InvalidArgumentError);
    const transports = new FakeTransport();
    for (const bad of [
      { stableAfterMs: -1 },
      { maxRetries: -1 },
      { idleTimeoutMs: Number.NaN },
      { pingIntervalMs: -5 },
      { dedupeWindow: -1 },
      { sendQueueLimit: -1 },
      { connectTimeoutMs: -1 },
      { flushCheckMs: 0 },
    ]) {
      expect(() => new Subscriber({ transports, clock, ...bad })).toThrow(InvalidArgumentError);
    }
  });
});

describe('Subscriber: connecting and reconnecting', () => {
  it('connects at once on start, reports the transport and does nothing before start', () => {
    const { subscriber, transport } = setup();
    expect(transport.connections).toHaveLength(0);
    expect(subscriber.state).toBe('idle');
    const opens: unknown[] = [];
    subscriber.on('open', (event) => opens.push(event));
    subscriber.start();
    expect(subscriber.state).toBe('connecting');
    transport.last.open();
    expect(subscriber.state).toBe('open');
    expect(subscriber.transport).toBe('fake');
    expect(opens).toEqual([{ transport: 'fake', cursor: undefined, attempt: 0 }]);
    subscriber.close();
  });

  it('waits a jittered delay before the very first reconnect, and keeps it at the flat start of the curve while connections keep failing', () => {
    const { clock, subscriber, transport, reconnects } = setup({ spreadMs: 0 });
    subscriber.start();
    transport.last.open().close({ reason: 'network' });
    expect(reconnects).toHaveLength(1);
    const first = reconnects[0]!;
    expect(first).toMatchObject({ attempt: 1, reason: 'network', transport: 'fake' });
    expect(first.delayMs).toBeGreaterThanOrEqual(4600 * 0.98);
    expect(first.delayMs).toBeLessThanOrEqual(4600 * 1.02);
    clock.advance(first.delayMs - 1);
    expect(transport.connections).toHaveLength(1);
    clock.advance(1);
    expect(transport.connections).toHaveLength(2);
    transport.last.close({ reason: 'network' });
    const second = reconnects[1]!;
    expect(second.attempt).toBe(2);
    expect(second.delayMs).toBeGreaterThanOrEqual(4600 * 0.98);
    expect(second.delayMs).toBeLessThanOrEqual(4600 * 1.02);
    subscriber.close();
  });

  it('resets the backoff only after the connection has stayed open for stableAfterMs', () => {
    const { clock, subscriber, transport, reconnects } = setup({
      spreadMs: 0,
      stableAfterMs: 5000,
      backoff: backoff({ strategy: 'none', initial: 100 }),
    });
    subscriber.start();
    transport.last.open().close();
    expect(reconnects.at(-1)!.delayMs).toBe(100);
    clock.advance(100);
    // Open but dropped before it was stable: the backoff keeps growing.
    transport.last.open();
    clock.advance(4999);
    transport.last.close();
    expect(reconnects.at(-1)!.delayMs).toBe(200);
    clock.advance(200);
    transport.last.open();
    clock.advance(5000);
    transport.last.close();
    expect(reconnects.at(-1)!).toMatchObject({ attempt: 1, delayMs: 100 });
    subscriber.close();
  });

  it('honours Retry-After-style hints and SSE retry: with jitter above them', () => {
    const { clock, subscriber, transport, reconnects } = setup({ spreadMs: 0 });
    subscriber.start();
    transport.last.close({ reason: 'http-503', retryAfterMs: 30_000 });
    const hinted = reconnects[0]!;
    expect(hinted.hintMs).toBe(30_000);
    expect(hinted.delayMs).toBeGreaterThanOrEqual(30_000);
    expect(hinted.delayMs).toBeLessThanOrEqual(36_000);
    clock.advance(hinted.delayMs);
    transport.last.sink.retryHint(8000);
    transport.last.open().close({ reason: 'eof' });
    const retried = reconnects[1]!;
    expect(retried.hintMs).toBe(8000);
    expect(retried.delayMs).toBeGreaterThanOrEqual(8000);
    expect(retried.delayMs).toBeLessThanOrEqual(9600);
    subscriber.close();
  });

  it('stops without reconnecting when the server says so', () => {
    const { clock, subscriber, transport, reconnects } = setup();
    const gone: unknown[] = [];
    subscriber.on('gone', (event) => gone.push(event));
    subscriber.start();
    transport.last.open().close({ reason: 'http-204', stop: true });
    expect(reconnects).toHaveLength(0);
    expect(gone).toEqual([{ reason: 'stopped', error: undefined }]);
    expect(subscriber.state).toBe('closed');
    expect(clock.pendingTimers).toBe(0);
  });

  it('gives up after maxRetries consecutive attempts with a gave-up error', async () => {
    const { clock, subscriber, transport, reconnects } = setup({ maxRetries: 3 });
    const gone = subscriber.waitFor('gone');
    subscriber.start();
    for (let i = 0; i < 4; i++) {
      transport.last.close({ reason: 'network', error: new Error('refused') });
      clock.advance(clock.nextTimerAt() === undefined ? 0 : clock.nextTimerAt()! - clock.now());
    }
    expect(reconnects.map((r) => r.attempt)).toEqual([1, 2, 3]);
    const event = await gone;
    expect(event.reason).toBe('max-retries');
    expect(isPollkitError(event.error, 'gave-up')).toBe(true);
    expect((event.error as Error).cause).toEqual(new Error('refused'));
    expect(clock.pendingTimers).toBe(0);
  });

  it('abandons a connection that does not open within connectTimeoutMs', () => {
    const { clock, subscriber, transport, reconnects } = setup({ connectTimeoutMs: 1000 });
    subscriber.start();
    clock.advance(1000);
    expect(transport.connections[0]!.closedByClient).toBe(true);
    expect(reconnects[0]!.reason).toBe('connect-timeout');
    subscriber.close();
  });

  it('falls back to the next transport when one is unavailable, and settles on the first that opens', () => {
    const clock = new ManualClock();
    const websocket = new FakeTransport({
      name: 'websocket',
      onConnect: (c) => c.close({ reason: 'unsupported', unavailable: true }),
    });
    const sse = new FakeTransport({ name: 'sse', canSend: false });
    const subscriber = new Subscriber({ transports: [websocket, sse], clock });
    const fallbacks: unknown[] = [];
    subscriber.on('fallback', (event) => fallbacks.push(event));
    subscriber.start();
    expect(fallbacks).toEqual([{ from: 'websocket', to: 'sse', reason: 'unsupported', error: undefined }]);
    expect(sse.connections).toHaveLength(1);
    sse.last.open();
    expect(subscriber.transport).toBe('sse');
    // Settled: later failures reconnect over SSE, never back to WebSocket.
    sse.last.close();
    clock.advance(clock.nextTimerAt()! - clock.now());
    expect(sse.connections).toHaveLength(2);
    expect(websocket.connections).toHaveLength(1);
    subscriber.close();
  });

  it('falls back when the transport in use keeps failing, carrying the cursor, and steps back up later', () => {
    const clock = new ManualClock({ seed: 3 });
    const sse = new FakeTransport({ name: 'sse', canSend: false });
    const poll = new FakeTransport({ name: 'long-poll', canSend: false });
    const subscriber = new Subscriber({ transports: [sse, poll], clock });
    const moves: string[] = [];
    subscriber.on('fallback', (event) => moves.push(`${event.from}>${event.to}:${event.reason}`));
    const next = (): void => clock.advance(clock.nextTimerAt()! - clock.now());
    subscriber.start();
    sse.last.open().message('a', '1');
    clock.advance(10_000); // stable
    // A stable connection's cut counts for nothing; then three in a row that open and are cut before
    // they prove stable (the default 10 s).
    sse.last.close({ reason: 'network' });
    for (let i = 0; i < 3; i++) {
      next();
      sse.last.open().close({ reason: 'network' });
    }
    expect(moves).toEqual(['sse>long-poll:network']);
    next();
    expect(poll.connections).toHaveLength(1);
    expect(poll.last.cursor).toBe('1');
    poll.last.open().message('b', '2');
    expect(subscriber.transport).toBe('long-poll');
    // Stable on long poll for stepUpAfterMs (default 60 s) after the stable mark: SSE is tried again.
    clock.advance(10_000 + 60_000);
    expect(moves.at(-1)).toBe('long-poll>sse:step-up');
    expect(poll.last.closedByClient).toBe(true);
    expect(sse.last.cursor).toBe('2');
    // The try fails before opening: straight back to long poll, no backoff wait, and the next try
    // waits twice as long.
    sse.last.close({ reason: 'network' });
    expect(moves.at(-1)).toBe('sse>long-poll:network');
    expect(poll.connections).toHaveLength(2);
    poll.last.open();
    clock.advance(10_000 + 60_000);
    expect(moves.at(-1)).toBe('sse>long-poll:network');
    clock.advance(60_000);
    expect(moves.at(-1)).toBe('long-poll>sse:step-up');
    // This time SSE holds: it stays, and nothing steps anywhere.
    sse.last.open();
    clock.advance(10_000 + 240_000);
    expect(subscriber.transport).toBe('sse');
    expect(moves.at(-1)).toBe('long-poll>sse:step-up');
    expect(sse.connections).toHaveLength(sse.connections.filter((c) => c.done).length + 1);
    subscriber.close();
    expect(clock.pendingTimers).toBe(0);
  });

  it('never falls back once settled with fallbackAfter 0, and never steps up with stepUpAfterMs 0', () => {
    const clock = new ManualClock();
    const a = new FakeTransport({ name: 'a' });
    const b = new FakeTransport({ name: 'b' });
    const subscriber = new Subscriber({ transports: [a, b], clock, fallbackAfter: 0 });
    subscriber.start();
    a.last.open();
    for (let i = 0; i < 10; i++) {
      a.last.close({ reason: 'network' });
      clock.advance(clock.nextTimerAt()! - clock.now());
    }
    expect(b.connections).toHaveLength(0);
    subscriber.close();
    expect(() => new Subscriber({ transports: a, fallbackAfter: -1 })).toThrow(InvalidArgumentError);
    expect(() => new Subscriber({ transports: a, stepUpAfterMs: Number.NaN })).toThrow(InvalidArgumentError);
  });

  it('rotates through transports on ambiguous failures before anything opened', () => {
    const clock = new ManualClock();
    const a = new FakeTransport({ name: 'a' });
    const b = new FakeTransport({ name: 'b' });
    const subscriber = new Subscriber({ transports: [a, b], clock });
    subscriber.start();
    a.last.close({ reason: 'network' });
    expect(b.connections).toHaveLength(0);
    clock.advance(clock.nextTimerAt()! - clock.now());
    expect(b.connections).toHaveLength(1);
    b.last.close({ reason: 'network' });
    clock.advance(clock.nextTimerAt()! - clock.now());
    expect(a.connections).toHaveLength(2);
    a.last.open();
    expect(subscriber.transport).toBe('a');
    subscriber.close();
  });

  it('ends with "unavailable" when no transport can work here', async () => {
    const clock = new ManualClock();
    const none = () => new FakeTransport({ onConnect: (c) => c.close({ reason: 'unsupported', unavailable: true }) });
    const subscriber = new Subscriber({ transports: [none(), none()], clock });
    const gone = subscriber.waitFor('gone');
    subscriber.start();
    expect(await gone).toMatchObject({ reason: 'unavailable' });
    expect(clock.pendingTimers).toBe(0);
  });

  it('survives a transport whose connect throws', () => {
    const clock = new ManualClock();
    const subscriber = new Subscriber({
      transports: {
        name: 'broken',
        canSend: false,
        connect: () => {
          throw new Error('boom');
        },
      },
      clock,
      maxRetries: 1,
    });
    const reasons: string[] = [];
    subscriber.on('close', (event) => reasons.push(event.reason));
    subscriber.start();
    clock.advance(clock.nextTimerAt()! - clock.now());
    expect(reasons).toEqual(['error', 'error']);
    expect(subscriber.state).toBe('closed');
  });
});

describe('Subscriber: delivery and the cursor', () => {
  it('commits the cursor only after the message is dispatched and resumes from it', () => {
    const { clock, subscriber, transport } = setup({ cursor: 'c0' });
    const seenCursorDuringDispatch: (string | undefined)[] = [];
    const commits: string[] = [];
    subscriber.on('message', () => seenCursorDuringDispatch.push(subscriber.cursor));
    subscriber.on('commit', ({ cursor }) => commits.push(cursor));
    subscriber.start();
    expect(transport.last.cursor).toBe('c0');
    transport.last.open().message('a', '1').message('b', '2');
    expect(seenCursorDuringDispatch).toEqual(['c0', '1']);
    expect(commits).toEqual(['1', '2']);
    transport.last.close();
    clock.advance(clock.nextTimerAt()! - clock.now());
    expect(transport.last.cursor).toBe('2');
    subscriber.close();
  });

  it('takes the cursor given to start over the constructor one', () => {
    const { subscriber, transport } = setup({ cursor: 'old' });
    subscriber.start('saved');
    expect(transport.last.cursor).toBe('saved');
    subscriber.close();
  });

  it('drops re-delivered ids within the window and passes id-less messages through', () => {
    const { subscriber, transport } = setup({ dedupeWindow: 2 });
    const got: string[] = [];
    subscriber.on('message', ({ data }) => got.push(data));
    subscriber.start();
    transport.last
      .open()
      .message('a', '1')
      .message('a-again', '1')
      .message('x')
      .message('x')
      .message('b', '2')
      .message('c', '3')
      // '1' fell out of the two-id window, so it would be delivered again; '3' is still remembered.
      .message('c-again', '3')
      .message('a-late', '1');
    expect(got).toEqual(['a', 'x', 'x', 'b', 'c', 'a-late']);
    subscriber.close();
  });

  it('reports a throwing listener as an error and keeps going', () => {
    const { subscriber, transport } = setup();
    const errors: unknown[] = [];
    subscriber.on('error', (error) => errors.push(error));
    subscriber.on('message', ({ data }) => {
      if (data === 'bad') throw new Error('listener failed');
    });
    subscriber.start();
    transport.last.open().message('bad', '1').message('good', '2');
    expect(errors).toHaveLength(1);
    expect(subscriber.cursor).toBe('2');
    subscriber.close();
  });

  it('yields messages through the async iterator and ends it on close', async () => {
    const { subscriber, transport } = setup();
    subscriber.start();
    const iterator = subscriber[Symbol.asyncIterator]();
    transport.last.open().message('a', '1').message('b', '2');
    const received: SubscriberMessage<string>[] = [];
    received.push((await iterator.next()).value as SubscriberMessage<string>);
    received.push((await iterator.next()).value as SubscriberMessage<string>);
    expect(received.map((m) => [m.data, m.id, m.transport])).toEqual([
      ['a', '1', 'fake'],
      ['b', '2', 'fake'],
    ]);
    const pending = iterator.next();
    subscriber.close();
    expect(await pending).toEqual({ done: true, value: undefined });
  });

  it('throws the failure from the iterator when it gives up', async () => {
    const { clock, subscriber, transport } = setup({ maxRetries: 0 });
    subscriber.start();
    const iterator = subscriber.messages();
    const pending = iterator.next();
    transport.last.close({ reason: 'network' });
    await expect(pending).rejects.toMatchObject({ code: 'gave-up' });
    expect(clock.pendingTimers).toBe(0);
  });

  it('ends an iterator that falls iteratorBufferLimit messages behind, leaving listeners and other iterators alone', async () => {
    const { subscriber, transport } = setup({ iteratorBufferLimit: 3 });
    subscriber.start();
    transport.last.open();
    const slow = subscriber.messages();
    const keeping = subscriber.messages();
    const heard: string[] = [];
    subscriber.on('message', (message) => heard.push(message.data));
    const kept: string[] = [];
    for (const [data, id] of [
      ['a', '1'],
      ['b', '2'],
      ['c', '3'],
    ] as const) {
      transport.last.message(data, id);
      kept.push(((await keeping.next()).value as SubscriberMessage<string>).data);
    }
    transport.last.message('d', '4');
    await expect(slow.next()).rejects.toMatchObject({ code: 'overloaded', retryable: true });
    await expect(slow.next()).rejects.toMatchObject({ code: 'overloaded' });
    kept.push(((await keeping.next()).value as SubscriberMessage<string>).data);
    expect(kept).toEqual(['a', 'b', 'c', 'd']);
    expect(heard).toEqual(['a', 'b', 'c', 'd']);
    expect(subscriber.cursor).toBe('4');
    expect(() => new Subscriber({ transports: new FakeTransport(), iteratorBufferLimit: 0 })).toThrow(
      InvalidArgumentError,
    );
    subscriber.close();
  });

  it('detaches an iterator on break without closing the subscriber', async () => {
    const { subscriber, transport } = setup();
    subscriber.start();
    transport.last.open();
    const iterator = subscriber.messages();
    transport.last.message('a', '1');
    for await (const message of iterator) {
      expect(message.data).toBe('a');
      break;
    }
    expect(subscriber.state).toBe('open');
    subscriber.close();
  });

  it('ends with "aborted" when its signal aborts', async () => {
    const controller = new AbortController();
    const { clock, subscriber, transport } = setup({ signal: controller.signal });
    subscriber.start();
    transport.last.open();
    const gone = subscriber.waitFor('gone');
    controller.abort(new Error('page unloaded'));
    expect(await gone).toEqual({ reason: 'aborted', error: new Error('page unloaded') });
    expect(transport.last.closedByClient).toBe(true);
    expect(clock.pendingTimers).toBe(0);
  });

  it('rejects waitFor when the subscriber ends first', async () => {
    const { subscriber } = setup();
    subscriber.start();
    const open = subscriber.waitFor('open');
    subscriber.close();
    await expect(open).rejects.toMatchObject({ code: 'subscriber-closed' });
    expect(subscriber.listenerCount('gone')).toBe(0);
    expect(subscriber.listenerCount('open')).toBe(0);
  });
});

describe('Subscriber: liveness', () => {
  it('replaces a connection that stays silent for idleTimeoutMs', () => {
    const transport = new FakeTransport({ heartbeats: true });
    const { clock, subscriber, reconnects } = setup({ idleTimeoutMs: 45_000 }, transport);
    subscriber.start();
    transport.last.open();
    clock.advance(30_000);
    transport.last.activity(); // a ": hb" comment
    clock.advance(44_999);
    expect(reconnects).toHaveLength(0);
    clock.advance(1);
    expect(reconnects[0]!.reason).toBe('idle-timeout');
    expect(transport.connections[0]!.closedByClient).toBe(true);
    subscriber.close();
  });

  it('does not judge silence on transports without heartbeats', () => {
    const { clock, subscriber, transport, reconnects } = setup({ idleTimeoutMs: 1000 });
    subscriber.start();
    transport.last.open();
    clock.advance(60_000);
    expect(reconnects).toHaveLength(0);
    subscriber.close();
  });

  it('sends an application ping every pingIntervalMs while open', () => {
    const transport = new FakeTransport({ heartbeats: true, ping: true });
    const { clock, subscriber } = setup({ pingIntervalMs: 10_000, idleTimeoutMs: 25_000 }, transport);
    subscriber.start();
    transport.last.open();
    clock.advance(10_000);
    expect(transport.last.pings).toBe(1);
    transport.last.activity(); // the pong
    clock.advance(10_000);
    expect(transport.last.pings).toBe(2);
    transport.last.activity();
    clock.advance(10_000);
    expect(transport.connections).toHaveLength(1);
    subscriber.close();
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('Subscriber: outbound queue', () => {
  it('queues while disconnected, flushes in order on open, and reports each outcome', async () => {
    const { clock, subscriber, transport } = setup({ sendQueueLimit: 2 });
    subscriber.start();
    const a = subscriber.send('a');
    const b = subscriber.send('b');
    const c = subscriber.send('c');
    expect([a.status, b.status, c.status]).toEqual(['queued', 'queued', 'dropped']);
    expect(await c.settled).toBe('dropped');
    transport.last.open();
    expect(transport.last.sent).toEqual(['a', 'b']);
    expect(await a.settled).toBe('sent');
    expect(await b.settled).toBe('sent');
    const d = subscriber.send('d');
    expect(d.status).toBe('sent');
    expect(transport.last.sent).toEqual(['a', 'b', 'd']);
    transport.last.close();
    expect(subscriber.send('e').status).toBe('queued');
    clock.advance(clock.nextTimerAt()! - clock.now());
    transport.last.open();
    expect(transport.last.sent).toEqual(['e']);
    subscriber.close();
  });

  it('reports "unknown" for a message still in the socket buffer when the socket dies', async () => {
    const { clock, subscriber, transport } = setup({ flushCheckMs: 10 });
    subscriber.start();
    transport.last.open();
    transport.last.bufferedAmount = 5;
    const flushed = subscriber.send('hello'); // 5 bytes, all still buffered
    expect(flushed.status).toBe('buffered');
    transport.last.bufferedAmount = 0;
    clock.advance(10);
    expect(await flushed.settled).toBe('sent');
    transport.last.bufferedAmount = 3;
    const lost = subscriber.send('abc');
    expect(lost.status).toBe('buffered');
    transport.last.close({ reason: 'ws-1006' });
    expect(await lost.settled).toBe('unknown');
    subscriber.close();
  });

  it('drops queued messages on close and refuses sends on transports that cannot send', async () => {
    const { subscriber } = setup();
    subscriber.start();
    const queued = subscriber.send('x');
    subscriber.close();
    expect(await queued.settled).toBe('dropped');
    expect(subscriber.send('y').status).toBe('dropped');
    const sseOnly = setup({}, new FakeTransport({ canSend: false }));
    sseOnly.subscriber.start();
    expect(sseOnly.subscriber.send('z').status).toBe('dropped');
    sseOnly.subscriber.close();
  });

  it('drops what was queued when it settles on a transport that cannot send', async () => {
    const clock = new ManualClock();
    const ws = new FakeTransport({ name: 'ws', onConnect: (c) => c.close({ reason: 'x', unavailable: true }) });
    const sse = new FakeTransport({ name: 'sse', canSend: false });
    const subscriber = new Subscriber({ transports: [ws, sse], clock });
    const receipt = subscriber.send('early');
    expect(receipt.status).toBe('queued');
    subscriber.start();
    sse.last.open();
    expect(await receipt.settled).toBe('dropped');
    subscriber.close();
  });
});

describe('Subscriber: no leaks', () => {
  it('releases every timer, listener and connection across 10,000 reconnect cycles', () => {
    const clock = new ManualClock({ seed: 11 });
    const transport = new FakeTransport({ heartbeats: true, ping: true });
    const controller = new AbortController();
    let signalListeners = 0;
    const add = controller.signal.addEventListener.bind(controller.signal);
    const remove = controller.signal.removeEventListener.bind(controller.signal);
    controller.signal.addEventListener = ((...args: Parameters<typeof add>) => {
      signalListeners++;
      add(...args);
    }) as typeof add;
    controller.signal.removeEventListener = ((...args: Parameters<typeof remove>) => {
      signalListeners--;
      remove(...args);
    }) as typeof remove;
    const subscriber = new Subscriber<string>({
      transports: transport,
      clock,
      signal: controller.signal,
      backoff: backoff({ strategy: 'full', initial: 10, max: 100 }),
      spreadMs: 50,
      stableAfterMs: 5,
      pingIntervalMs: 3,
      idleTimeoutMs: 7,
    });
    let delivered = 0;
    subscriber.on('message', () => delivered++);
    subscriber.start();
    let maxTimers = 0;
    let maxSignalListeners = 0;
    for (let cycle = 0; cycle < 10_000; cycle++) {
      const connection = transport.last;
      const before = transport.connections.length;
      connection.open().message(`m${cycle}`, String(cycle));
      clock.advance(6);
      if (cycle % 3 === 0) connection.close({ reason: 'network' });
      else if (cycle % 3 === 1)
        clock.advance(7); // idle watchdog closes it
      else connection.close({ reason: 'http-503', retryAfterMs: 5 });
      maxTimers = Math.max(maxTimers, clock.pendingTimers);
      maxSignalListeners = Math.max(maxSignalListeners, signalListeners);
      while (transport.connections.length === before) clock.advance(clock.nextTimerAt()! - clock.now());
    }
    expect(delivered).toBe(10_000);
    expect(transport.connections).toHaveLength(10_001);
    // At any time: a reconnect timer, or a connection's connect/stable/idle/ping timers, never more.
    expect(maxTimers).toBeLessThanOrEqual(4);
    expect(transport.liveSignals).toBe(1);
    expect(maxSignalListeners).toBe(1);
    subscriber.close();
    expect(clock.pendingTimers).toBe(0);
    expect(transport.liveSignals).toBe(0);
    expect(transport.alive).toBe(0);
    expect(signalListeners).toBe(0);
    expect(subscriber.listenerCount('message')).toBe(1);
  });
});

describe('Subscriber: defaults', () => {
  it('uses gRPC backoff after the spread', () => {
    const { subscriber, transport, clock, reconnects } = setup();
    subscriber.start();
    transport.last.close();
    expect(reconnects[0]!.delayMs).toBeLessThanOrEqual(3000);
    clock.advance(reconnects[0]!.delayMs);
    transport.last.close();
    const curve = grpcBackoff.options.initial * grpcBackoff.options.factor ** 3;
    expect(reconnects[1]!.delayMs).toBeGreaterThanOrEqual(curve * 0.8);
    expect(reconnects[1]!.delayMs).toBeLessThanOrEqual(curve * 1.2);
    subscriber.close();
  });
});
