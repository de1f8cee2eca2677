import { describe, expect, it } from 'vitest';
import {
  HEADERS,
  isTerminalStatus,
  JOB_STATUSES,
  type JobStatus,
  PROBLEMS,
  problem,
  type ProblemCode,
  problemType,
} from '../../src/core/protocol.js';

describe('isTerminalStatus()', () => {
  const table: Record<JobStatus, boolean> = {
    queued: false,
    running: false,
    succeeded: true,
    failed: true,
    canceled: true,
  };

  it.each(Object.entries(table))('%s → %s', (status, terminal) => {
    expect(isTerminalStatus(status as JobStatus)).toBe(terminal);
  });

  it('covers every status there is', () => {
    expect([...JOB_STATUSES].sort()).toEqual(Object.keys(table).sort());
  });
});

describe('problem()', () => {
  it('builds type, title, status and code from PROBLEMS, with message mirroring detail', () => {
    expect(problem('job-not-found', 'No job 3f1c is visible to this caller.')).toEqual({
      type: 'urn:pollkit:problem:job-not-found',
      title: 'Job not found',
      status: 404,
      code: 'job-not-found',
      detail: 'No job 3f1c is visible to this caller.',
      message: 'No job 3f1c is visible to this caller.',
    });
  });

  it('omits detail and message when no detail is given', () => {
    const body = problem('overloaded');
    expect(body).toEqual({
      type: problemType('overloaded'),
      title: 'Server overloaded',
      status: 503,
      code: 'overloaded',
    });
    expect('detail' in body).toBe(false);
    expect('message' in body).toBe(false);
  });

  it('keeps extension members', () => {
    const body = problem('offset-gone', 'trimmed', { earliestOffset: 120, epoch: 'k9f' });
    expect(body.earliestOffset).toBe(120);
    expect(body.epoch).toBe('k9f');
    expect(body.status).toBe(410);
  });

  it('does not let extensions override type, title, status or code', () => {
    const body = problem('job-not-found', undefined, {
      type: 'https://evil.example',
      title: 'Fine',
      status: 200,
      code: 'ok',
      extra: true,
    });
    expect(body.type).toBe('urn:pollkit:problem:job-not-found');
    expect(body.title).toBe('Job not found');
    expect(body.status).toBe(404);
    expect(body.code).toBe('job-not-found');
    expect(body.extra).toBe(true);
  });

  it('lets the detail argument win over extension detail and message', () => {
    const body = problem('bad-request', 'real', { detail: 'fake', message: 'fake' });
    expect(body.detail).toBe('real');
    expect(body.message).toBe('real');
  });

  it('survives a JSON round trip', () => {
    const body = problem('offset-gone', 'x', { earliestOffset: 3 });
    expect(JSON.parse(JSON.stringify(body))).toEqual(body);
  });

  it.each(Object.keys(PROBLEMS) as ProblemCode[])('builds %s with its table status', (code) => {
    const body = problem(code);
    expect(body.status).toBe(PROBLEMS[code].status);
    expect(body.status).toBeGreaterThanOrEqual(400);
    expect(body.status).toBeLessThan(600);
    expect(body.type).toBe(`urn:pollkit:problem:${code}`);
  });
});

describe('protocol constants', () => {
  it('are frozen', () => {
    expect(Object.isFrozen(PROBLEMS)).toBe(true);
    expect(Object.isFrozen(HEADERS)).toBe(true);
  });

  it('spells every header in lowercase', () => {
    for (const name of Object.values(HEADERS)) expect(name).toBe(name.toLowerCase());
  });
});
