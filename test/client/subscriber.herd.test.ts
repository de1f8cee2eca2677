/**
 * The reconnect defaults, held to the storm targets on a manual clock: 1,000 real Subscribers with
 * default options lose their server in the same instant; it returns after 5 s (and after 30 s). The
 * server counts the connections that reach it per 100 ms (target ≤ 40), every attempt is counted too
 * (refused ones included), and each client's time back is measured from the return.
 * bench/storm.ts measures the same on real sockets beside other clients.
 */
import { describe, expect, it } from 'vitest';
import { Subscriber } from '../../src/client/subscriber.js';
import type { Transport, TransportSink } from '../../src/client/transports/transport.js';
import { ManualClock } from '../../src/core/clock.js';

const CLIENTS = 1000;

function storm(outageMs: number, seed: number) {
  const clock = new ManualClock({ seed });
  let up = true;
  const live = new Set<TransportSink<string>>();
  const attempts: number[] = [];
  const arrivals: number[] = [];
  const transport: Transport<string> = {
    name: 'simulated',
    canSend: false,
    connect(_request, sink) {
      attempts.push(clock.now());
      if (up) arrivals.push(clock.now());
      // A refused connect or a handshake takes a millisecond.
      const timer = clock.setTimeout(() => {
        if (!up) return sink.closed({ reason: 'refused' });
        live.add(sink);
        sink.opened();
      }, 1);
      return { heartbeats: false, close: () => (clock.clearTimeout(timer), live.delete(sink)) };
    },
  };
  const back: number[] = [];
  let returnAt = Number.POSITIVE_INFINITY;
  let gaveUp = 0;
  const subscribers = Array.from({ length: CLIENTS }, () => {
    const subscriber = new Subscriber<string>({ transports: transport, clock });
    let counted = false;
    subscriber.on('open', () => {
      if (clock.now() >= returnAt && !counted) {
        counted = true;
        back.push(clock.now() - returnAt);
      }
    });
    subscriber.on('gone', ({ reason }) => {
      if (reason !== 'closed') gaveUp++;
    });
    return subscriber.start();
  });
  clock.advance(60_000);
  const crashAt = clock.now();
  returnAt = crashAt + outageMs;
  attempts.length = 0;
  arrivals.length = 0;
  up = false;
  for (const sink of [...live]) sink.closed({ reason: 'network' });
  live.clear();
  clock.setTimeout(() => (up = true), outageMs);
  while (back.length + gaveUp < CLIENTS && clock.now() < crashAt + 120_000) clock.advanceTo(clock.nextTimerAt()!);
  for (const subscriber of subscribers) subscriber.close();
  const peak = (times: readonly number[]): number => {
    const windows = new Map<number, number>();
    for (const at of times) windows.set(Math.floor(at / 100), (windows.get(Math.floor(at / 100)) ?? 0) + 1);
    return Math.max(...windows.values());
  };
  back.sort((a, b) => a - b);
  return {
    // What reaches the server: attempts while it is up (a refused connect never reaches the process).
    peak: peak(arrivals),
    // Every attempt, refused ones included: the outage itself stays gentle too.
    peakAll: peak(attempts),
    p99: back[Math.ceil(0.99 * back.length) - 1]!,
    back: back.length,
    gaveUp,
  };
}

describe('reconnect defaults under a herd (1,000 subscribers, manual clock)', () => {
  for (const seed of [1, 2, 3]) {
    it(`5 s outage, seed ${seed}: at most 40 attempts per 100 ms, p99 back within 5 s, none give up`, () => {
      const result = storm(5000, seed);
      expect(result.gaveUp).toBe(0);
      expect(result.back).toBe(CLIENTS);
      expect(result.peak).toBeLessThanOrEqual(40);
      expect(result.peakAll).toBeLessThanOrEqual(50);
      expect(result.p99).toBeLessThanOrEqual(5000);
    });
  }

  it('30 s outage: at most 40 attempts per 100 ms, p99 back within 10 s, none give up', () => {
    const result = storm(30_000, 4);
    expect(result.gaveUp).toBe(0);
    expect(result.back).toBe(CLIENTS);
    expect(result.peak).toBeLessThanOrEqual(40);
    expect(result.peakAll).toBeLessThanOrEqual(50);
    expect(result.p99).toBeLessThanOrEqual(10_000);
  });
});
