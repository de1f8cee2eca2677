import { describe, expect, it } from 'vitest';
import { PollkitError } from '../../../src/core/errors.js';
import { canonicalJson, fingerprint } from '../../../src/server/jobs/fingerprint.js';
import { randomId, randomToken } from '../../../src/server/ids.js';
import { jobFailureProblem } from '../../../src/server/jobs/job-problem.js';

describe('jobFailureProblem', () => {
  it('keeps a thrown problem object as it is', () => {
    const thrown = { type: 'urn:x', title: 'Nope', status: 422, code: 'nope', detail: 'd' };
    expect(jobFailureProblem(thrown)).toEqual(thrown);
  });

  it('keeps a well-formed code, uses our table for known codes, and falls back to job-failed', () => {
    expect(jobFailureProblem(Object.assign(new Error('slow'), { code: 'job-timeout' }))).toMatchObject({
      code: 'job-timeout',
      status: 504,
      title: 'Job timed out',
    });
    expect(jobFailureProblem(Object.assign(new Error('x'), { code: 'ENOENT' }))).toMatchObject({ code: 'job-failed' });
    expect(jobFailureProblem(42)).toMatchObject({ code: 'job-failed', detail: 'The job failed with a number value' });
    expect(jobFailureProblem(null)).toMatchObject({ detail: 'The job failed with a null value' });
  });

  it('never includes the stack unless asked', () => {
    const error = new Error('boom');
    expect(jobFailureProblem(error)).not.toHaveProperty('stack');
    expect(jobFailureProblem(error, { exposeStackTraces: true })['stack']).toBe(error.stack);
  });
});

describe('fingerprint', () => {
  it('ignores key order at every depth and tells different values apart', async () => {
    expect(canonicalJson({ b: 1, a: [2, { d: 3, c: 4 }] })).toBe('{"a":[2,{"c":4,"d":3}],"b":1}');
    expect(await fingerprint({ a: 1, b: { c: 2, d: 3 } })).toBe(await fingerprint({ b: { d: 3, c: 2 }, a: 1 }));
    expect(await fingerprint({ a: 1 })).not.toBe(await fingerprint({ a: 2 }));
    expect(await fingerprint(undefined)).not.toBe(await fingerprint(null));
  });

  it('rejects values JSON cannot represent with invalid-input', async () => {
    const cyclic: Record<string, unknown> = {};
    cyclic['self'] = cyclic;
    await expect(fingerprint(cyclic)).rejects.toSatisfy(
      (e: unknown) => PollkitError.is(e) && e.code === 'invalid-input',
    );
    await expect(fingerprint(1n)).rejects.toSatisfy((e: unknown) => PollkitError.is(e) && e.code === 'invalid-input');
  });
});

describe('ids', () => {
  it('makes UUIDv4 job ids and base64url tokens', () => {
    expect(randomId()).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(randomToken(16)).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(randomToken()).not.toBe(randomToken());
  });
});
