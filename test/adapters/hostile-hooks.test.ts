/**
 * A broken hook or a body parser in front of pollkit is a 4xx/5xx problem, never an exit: each server
 * runs as a child process under `--unhandled-rejections=strict`, and must still be serving afterwards.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type ChildServer, startChild } from '../helpers/child/child-server.js';

const children: ChildServer[] = [];
afterEach(async () => {
  await Promise.all(children.splice(0).map((child) => child.stop()));
});

async function start(scenario: string): Promise<ChildServer> {
  const child = await startChild(scenario);
  children.push(child);
  return child;
}

/** A JSON body nested `depth` arrays deep around a job submit. */
function deepBody(depth: number): string {
  return `{"type":"echo","input":${'['.repeat(depth)}${']'.repeat(depth)}}`;
}

describe('hostile hooks and bodies', () => {
  it('answers 500 problems when the node adapter’s context hook throws, and keeps serving', async () => {
    const child = await start('node-context-throws');
    for (let i = 0; i < 3; i++) {
      const answer = await fetch(`${child.url}/pollkit/jobs`);
      expect(answer.status).toBe(500);
      expect(answer.headers.get('content-type')).toBe('application/problem+json');
      expect(((await answer.json()) as { code: string }).code).toBe('internal-error');
    }
    expect(child.alive()).toBe(true);
    expect(child.stderr()).toContain('the session store is down');
  });

  it('answers 400 to a body nested 5,000 deep that express.json() parsed, and keeps serving', async () => {
    const child = await start('express-json');
    const body = deepBody(5000);
    expect(body.length).toBeGreaterThan(10_000);
    const answer = await fetch(`${child.url}/pollkit/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    expect(answer.status).toBe(400);
    expect(((await answer.json()) as { code: string; parameter: string }).parameter).toBe('body');
    const ok = await fetch(`${child.url}/pollkit/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: deepBody(3),
    });
    expect(ok.status).toBe(202);
    expect(child.alive()).toBe(true);
  });
});
