import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { InvalidArgumentError, OverloadedError } from '../../src/core/errors.js';
import { CommandGuard, StoreUnavailableError, toStoreError } from '../../src/redis/connection.js';

/** Just enough of a client for the guard: a status and nothing else. */
function fakeClient(status: string): Redis {
  return { status } as unknown as Redis;
}

describe('CommandGuard', () => {
  it('refuses at once while the client is between connections', async () => {
    for (const status of ['reconnecting', 'close', 'end']) {
      const guard = new CommandGuard({ redis: fakeClient(status), clock: new ManualClock(), commandTimeoutMs: 1000 });
      let called = false;
      const outcome = guard.run(async () => (called = true));
      await expect(outcome).rejects.toSatisfy(StoreUnavailableError.is);
      expect(called).toBe(false);
    }
  });

  it('fails a command that does not answer by its deadline, and ignores its late rejection', async () => {
    const clock = new ManualClock();
    const guard = new CommandGuard({ redis: fakeClient('ready'), clock, commandTimeoutMs: 1000 });
    let reject: (error: Error) => void = () => undefined;
    const outcome = guard.run(() => new Promise<never>((_, fail) => (reject = fail)));
    const settled = outcome.then(
      () => 'resolved',
      (error: unknown) => error,
    );
    clock.advance(999);
    await Promise.resolve();
    expect(clock.pendingTimers).toBe(1);
    clock.advance(1);
    const error = await settled;
    expect(StoreUnavailableError.is(error)).toBe(true);
    expect((error as StoreUnavailableError).retryable).toBe(true);
    expect(OverloadedError.is(error)).toBe(true);
    reject(new Error('Connection is closed.')); // must not surface as an unhandled rejection
    await Promise.resolve();
  });

  it('passes answers through and clears its timer', async () => {
    const clock = new ManualClock();
    const guard = new CommandGuard({ redis: fakeClient('ready'), clock, commandTimeoutMs: 1000 });
    expect(await guard.run(async () => 42)).toBe(42);
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('toStoreError', () => {
  const reply = (message: string): Error => Object.assign(new Error(message), { name: 'ReplyError' });

  it('keeps genuine Redis errors and pollkit errors as they are', () => {
    const wrongType = reply('WRONGTYPE Operation against a key holding the wrong kind of value');
    expect(toStoreError(wrongType)).toBe(wrongType);
    const invalid = new InvalidArgumentError('bad', 'x');
    expect(toStoreError(invalid)).toBe(invalid);
  });

  it('turns connection failures and transient replies into a retryable StoreUnavailableError', () => {
    for (const failure of [
      new Error('connect ECONNREFUSED 127.0.0.1:6390'),
      Object.assign(new Error('Reached the max retries per request limit'), { name: 'MaxRetriesPerRequestError' }),
      reply('LOADING Redis is loading the dataset in memory'),
      reply('READONLY You cannot write against a read only replica.'),
    ]) {
      const mapped = toStoreError(failure);
      expect(StoreUnavailableError.is(mapped)).toBe(true);
      expect((mapped as StoreUnavailableError).cause).toBe(failure);
      expect((mapped as StoreUnavailableError).code).toBe('overloaded');
    }
  });
});
