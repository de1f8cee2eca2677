import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import {
  AbortedError,
  HttpError,
  IllegalTransitionError,
  InvalidArgumentError,
  isPollkitError,
  isRetryableStatus,
  JobCanceledError,
  JobFailedError,
  OffsetGoneError,
  OffsetOutOfRangeError,
  OverloadedError,
  PollkitError,
  ProtocolError,
  TimeoutError,
} from '../../src/core/errors.js';
import { problem } from '../../src/core/protocol.js';

const failedProblem = { type: 'about:blank', title: 'Boom', status: 500, code: 'boom', detail: 'it broke' };

/** A pollkit error class: constructible (with its own arguments) and carrying a static guard. */
type ErrorClass = (abstract new (...args: never[]) => PollkitError) & { is(value: unknown): boolean };

/** One instance of every class, with the code and default retryability it must have. */
const cases: [string, PollkitError, string, boolean, ErrorClass][] = [
  ['PollkitError', new PollkitError('m', 'custom-code'), 'custom-code', false, PollkitError],
  ['TimeoutError', new TimeoutError(), 'timeout', true, TimeoutError],
  ['AbortedError', new AbortedError(), 'aborted', false, AbortedError],
  ['InvalidArgumentError', new InvalidArgumentError('m', 'arg'), 'invalid-argument', false, InvalidArgumentError],
  ['HttpError', new HttpError(404), 'http-404', false, HttpError],
  ['ProtocolError', new ProtocolError('m'), 'protocol-violation', false, ProtocolError],
  ['JobFailedError', new JobFailedError('j1', failedProblem), 'job-failed', false, JobFailedError],
  ['JobCanceledError', new JobCanceledError('j1'), 'canceled', false, JobCanceledError],
  [
    'OffsetGoneError',
    new OffsetGoneError('t', 1, { earliestOffset: 5, epoch: 'e' }),
    'offset-gone',
    false,
    OffsetGoneError,
  ],
  ['OffsetOutOfRangeError', new OffsetOutOfRangeError('t', 9, 3), 'offset-out-of-range', false, OffsetOutOfRangeError],
  ['IllegalTransitionError', new IllegalTransitionError('m'), 'illegal-transition', false, IllegalTransitionError],
  ['OverloadedError', new OverloadedError('m'), 'overloaded', true, OverloadedError],
];

describe.each(cases)('%s', (className, error, code, retryable, Class) => {
  it('has its stable code and default retryability', () => {
    expect(error.code).toBe(code);
    expect(error.retryable).toBe(retryable);
  });

  it('is named after its class and is a real Error with a stack', () => {
    expect(error.name).toBe(className);
    expect(error).toBeInstanceOf(Error);
    expect(error).toBeInstanceOf(PollkitError);
    expect(error).toBeInstanceOf(Class);
    expect(typeof error.stack).toBe('string');
    expect(String(error)).toMatch(new RegExp(`^${className}: `));
  });

  it('passes its own guard and the base guards', () => {
    expect(Class.is(error)).toBe(true);
    expect(PollkitError.is(error)).toBe(true);
    expect(isPollkitError(error)).toBe(true);
    expect(isPollkitError(error, code)).toBe(true);
    expect(isPollkitError(error, 'something-else')).toBe(false);
  });

  it('fails every other subclass guard', () => {
    for (const [otherName, , , , Other] of cases) {
      if (otherName === className || Other === PollkitError) continue;
      expect(Other.is(error), `${otherName}.is(${className})`).toBe(false);
    }
  });
});

describe('PollkitError', () => {
  it('keeps the cause, and omits it when none was given', () => {
    const cause = new Error('root');
    const error = new PollkitError('wrapped', 'x', { cause });
    expect(error.cause).toBe(cause);
    expect('cause' in new PollkitError('plain', 'x')).toBe(false);
    expect(new TimeoutError('slow', { cause }).cause).toBe(cause);
    expect(new HttpError(500, { cause }).cause).toBe(cause);
    const falsy = new PollkitError('zero', 'x', { cause: 0 });
    expect(falsy.cause).toBe(0);
  });

  it('lets retryable be overridden either way', () => {
    expect(new PollkitError('m', 'x', { retryable: true }).retryable).toBe(true);
    expect(new TimeoutError('m', { retryable: false }).retryable).toBe(false);
    expect(new OverloadedError('m', { retryable: false }).retryable).toBe(false);
    expect(new HttpError(503, { retryable: false }).retryable).toBe(false);
    expect(new HttpError(404, { retryable: true }).retryable).toBe(true);
  });

  it('keeps the class default when a JavaScript caller passes retryable: undefined', () => {
    const options = { retryable: undefined } as unknown as { retryable: boolean };
    expect(new TimeoutError('m', options).retryable).toBe(true);
    expect(new OverloadedError('m', options).retryable).toBe(true);
    expect(new HttpError(503, options).retryable).toBe(true);
  });

  it('rejects non-errors in its guards', () => {
    for (const value of [undefined, null, 0, 'timeout', {}, [], new Error('x'), { code: 'timeout' }]) {
      expect(PollkitError.is(value)).toBe(false);
      expect(TimeoutError.is(value)).toBe(false);
      expect(isPollkitError(value)).toBe(false);
    }
  });

  it('does not expose the brand as an enumerable or JSON property', () => {
    const error = new TimeoutError();
    expect(Object.keys(error)).not.toContain(Symbol.for('pollkit.error').toString());
    expect(Object.getOwnPropertySymbols(error)).toContain(Symbol.for('pollkit.error'));
    expect(Object.getOwnPropertyDescriptor(error, Symbol.for('pollkit.error'))?.enumerable).toBe(false);
    expect(JSON.parse(JSON.stringify(error))).toEqual({ name: 'TimeoutError', code: 'timeout', retryable: true });
  });

  it('names subclasses of subclasses after themselves', () => {
    class CustomTimeout extends TimeoutError {}
    const error = new CustomTimeout();
    expect(error.name).toBe('CustomTimeout');
    expect(TimeoutError.is(error)).toBe(true);
  });
});

describe('cross-realm and cross-copy guards', () => {
  it('recognises an error branded by a second copy of the package', () => {
    // A second copy of pollkit (a CJS and an ESM build side by side) has its own PollkitError class,
    // but brands its instances with the same registered symbol.
    class OtherCopyError extends Error {
      readonly code: string;
      readonly retryable = true;
      readonly status = 503;
      constructor(code: string) {
        super('from the other copy');
        this.code = code;
        Object.defineProperty(this, Symbol.for('pollkit.error'), { value: true });
      }
    }
    const foreign = new OtherCopyError('timeout');
    expect(foreign).not.toBeInstanceOf(PollkitError);
    expect(PollkitError.is(foreign)).toBe(true);
    expect(isPollkitError(foreign, 'timeout')).toBe(true);
    expect(TimeoutError.is(foreign)).toBe(true);
    expect(AbortedError.is(foreign)).toBe(false);
    expect(HttpError.is(foreign)).toBe(true);
  });

  it('recognises a branded error from another vm realm, where instanceof fails', () => {
    const foreign: unknown = runInNewContext(`
      const error = new Error('other realm');
      error.code = 'overloaded';
      error.retryable = true;
      Object.defineProperty(error, Symbol.for('pollkit.error'), { value: true });
      error;
    `);
    expect(foreign).not.toBeInstanceOf(Error);
    expect(PollkitError.is(foreign)).toBe(true);
    expect(OverloadedError.is(foreign)).toBe(true);
  });

  it('does not accept a brand with a value other than true, or a private symbol of the same name', () => {
    const wrongValue = Object.assign(new Error('x'), { code: 'timeout', [Symbol.for('pollkit.error')]: 'yes' });
    const privateSymbol = Object.assign(new Error('x'), { code: 'timeout', [Symbol('pollkit.error')]: true });
    expect(PollkitError.is(wrongValue)).toBe(false);
    expect(PollkitError.is(privateSymbol)).toBe(false);
  });

  it('instanceof holds within one realm for every class', () => {
    expect(new OffsetGoneError('t', 0, { earliestOffset: 1, epoch: 'e' })).toBeInstanceOf(PollkitError);
    expect(new HttpError(500)).toBeInstanceOf(HttpError);
    expect(new TimeoutError()).not.toBeInstanceOf(AbortedError);
  });
});

describe('HttpError', () => {
  it('uses http-<status> as code and "HTTP <status>" as message without a problem', () => {
    const error = new HttpError(502);
    expect(error.code).toBe('http-502');
    expect(error.message).toBe('HTTP 502');
    expect(error.status).toBe(502);
    expect(error.problem).toBeUndefined();
    expect(error.retryAfterMs).toBeUndefined();
  });

  it('takes code and message from a problem body', () => {
    const body = problem('job-not-found', 'No job 3f1c is visible to this caller.');
    const error = new HttpError(404, { problem: body });
    expect(error.code).toBe('job-not-found');
    expect(error.message).toBe('No job 3f1c is visible to this caller.');
    expect(error.problem).toBe(body);
    expect(error.retryable).toBe(false);
    expect(new HttpError(404, { problem: problem('job-not-found') }).message).toBe('Job not found');
  });

  it('retryability follows the status, not the problem', () => {
    expect(new HttpError(503, { problem: problem('overloaded') }).retryable).toBe(true);
    expect(new HttpError(410, { problem: problem('offset-gone') }).retryable).toBe(false);
  });

  it('keeps retryAfterMs', () => {
    expect(new HttpError(429, { retryAfterMs: 2000 }).retryAfterMs).toBe(2000);
  });

  it('HttpError.is needs a numeric status', () => {
    expect(HttpError.is(new HttpError(500))).toBe(true);
    expect(HttpError.is(new TimeoutError())).toBe(false);
    expect(HttpError.is({ status: 500 })).toBe(false);
  });
});

describe('isRetryableStatus()', () => {
  const table: [number, boolean][] = [
    [200, false],
    [304, false],
    [400, false],
    [401, false],
    [403, false],
    [404, false],
    [408, true],
    [409, false],
    [410, false],
    [413, false],
    [422, false],
    [425, true],
    [429, true],
    [499, false],
    [500, true],
    [501, true],
    [502, true],
    [503, true],
    [504, true],
    [599, true],
  ];
  it.each(table)('%i → %s', (status, expected) => {
    expect(isRetryableStatus(status)).toBe(expected);
    expect(new HttpError(status).retryable).toBe(expected);
  });
});

describe('subclass payloads', () => {
  it('InvalidArgumentError names the argument', () => {
    expect(new InvalidArgumentError('bad', 'timeoutMs').argument).toBe('timeoutMs');
  });

  it('JobFailedError keeps the job id and problem, and builds its message from it', () => {
    const error = new JobFailedError('j1', failedProblem);
    expect(error.jobId).toBe('j1');
    expect(error.problem).toBe(failedProblem);
    expect(error.message).toBe('it broke');
    expect(new JobFailedError('j2', { type: 'x', title: 'Title only', status: 500, code: 'c' }).message).toBe(
      'Title only',
    );
  });

  it('JobCanceledError mentions the job', () => {
    const error = new JobCanceledError('abc');
    expect(error.jobId).toBe('abc');
    expect(error.message).toContain('abc');
  });

  it('OffsetGoneError carries the log position', () => {
    const error = new OffsetGoneError('orders', 10, { earliestOffset: 120, epoch: 'k9f' });
    expect([error.topic, error.offset, error.earliestOffset, error.epoch]).toEqual(['orders', 10, 120, 'k9f']);
    expect(error.message).toContain('120');
  });

  it('OffsetOutOfRangeError carries the high watermark', () => {
    const error = new OffsetOutOfRangeError('orders', 500, 121);
    expect([error.topic, error.offset, error.highWatermark]).toEqual(['orders', 500, 121]);
  });

  it('OverloadedError carries retryAfterMs', () => {
    expect(new OverloadedError('full', { retryAfterMs: 1000 }).retryAfterMs).toBe(1000);
    expect(new OverloadedError('full').retryAfterMs).toBeUndefined();
  });

  it('TimeoutError and AbortedError have default messages', () => {
    expect(new TimeoutError().message).toBe('The operation timed out');
    expect(new AbortedError().message).toBe('The operation was aborted');
  });
});
