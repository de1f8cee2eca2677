/**
 * Keeps the guides honest: the error tables in docs/errors.md are generated from `PROBLEMS` and the
 * error classes (`UPDATE_DOCS=1 npx vitest run test/examples/docs.test.ts` rewrites them, keeping
 * the hand-written last column), and every code the source raises is documented.
 */
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as prettier from 'prettier';
import { describe, expect, it } from 'vitest';
import * as pollkit from 'pollkit';
import {
  AbortedError,
  HttpError,
  IllegalTransitionError,
  InvalidArgumentError,
  JobCanceledError,
  JobFailedError,
  OffsetGoneError,
  OffsetOutOfRangeError,
  OverloadedError,
  PROBLEMS,
  PollkitError,
  ProtocolError,
  TimeoutError,
  isRetryableStatus,
} from 'pollkit';

const root = fileURLToPath(new URL('../..', import.meta.url));
const errorsDoc = join(root, 'docs/errors.md');

/** One instance of each error class, to read its code and default `retryable` from. */
const SAMPLES: Record<string, { readonly error: PollkitError; readonly code?: string; readonly retryable?: string }> = {
  PollkitError: { error: new PollkitError('x', 'x'), code: '(any)', retryable: 'when set' },
  TimeoutError: { error: new TimeoutError() },
  AbortedError: { error: new AbortedError() },
  InvalidArgumentError: { error: new InvalidArgumentError('x', 'x') },
  HttpError: {
    error: new HttpError(500),
    code: "the problem's `code`, else `http-<status>`",
    retryable: 'for 408, 425, 429, 5xx',
  },
  ProtocolError: { error: new ProtocolError('x') },
  JobFailedError: { error: new JobFailedError('j', { type: 't', title: 't', status: 500, code: 'boom' }) },
  JobCanceledError: { error: new JobCanceledError('j') },
  OffsetGoneError: { error: new OffsetGoneError('t', 0, { earliestOffset: 1, epoch: 'e' }) },
  OffsetOutOfRangeError: { error: new OffsetOutOfRangeError('t', 9, 1) },
  IllegalTransitionError: { error: new IllegalTransitionError('x') },
  OverloadedError: { error: new OverloadedError('x') },
};

/** The hand-written last column of a generated table, by its first cell. */
function notes(section: string): Map<string, string> {
  const result = new Map<string, string>();
  const rows = section.split('\n').filter((line) => line.startsWith('|'));
  for (const line of rows.slice(2)) {
    const cells = line
      .split('|')
      .slice(1, -1)
      .map((cell) => cell.trim());
    if (cells.length >= 2) result.set(cells[0]!, cells.at(-1)!);
  }
  return result;
}

function problemsTable(previous: Map<string, string>): string {
  const rows = Object.entries(PROBLEMS).map(([code, { status, title }]) => {
    const key = `\`${code}\``;
    return `| ${key} | ${status} | ${title} | ${isRetryableStatus(status) ? 'retry' : ''} | ${previous.get(key) ?? 'TODO: describe'} |`;
  });
  return ['| code | status | title | retry | when, and what to do |', '|---|---|---|---|---|', ...rows].join('\n');
}

function classesTable(previous: Map<string, string>): string {
  const rows = Object.entries(SAMPLES).map(([name, sample]) => {
    const key = `\`${name}\``;
    const code = sample.code ?? `\`${sample.error.code}\``;
    const retryable = sample.retryable ?? (sample.error.retryable ? 'yes' : 'no');
    return `| ${key} | ${code} | ${retryable} | ${previous.get(key) ?? 'TODO: describe'} |`;
  });
  return ['| class | code | retryable | thrown when |', '|---|---|---|---|', ...rows].join('\n');
}

const SECTION = /(<!-- BEGIN GENERATED: (\w+) -->\n)([\s\S]*?)(\n<!-- END GENERATED: \2 -->)/g;

/** The doc with its generated tables rebuilt from the source, formatted as `prettier --write` would. */
async function regenerate(doc: string): Promise<string> {
  let sections = 0;
  const rebuilt = doc.replace(SECTION, (_all, begin: string, name: string, body: string, end: string) => {
    sections++;
    const previous = notes(body);
    const table = name === 'problems' ? problemsTable(previous) : classesTable(previous);
    return `${begin}\n${table}\n${end}`;
  });
  expect(sections).toBe(2);
  const options = (await prettier.resolveConfig(errorsDoc)) ?? {};
  return prettier.format(rebuilt, { ...options, filepath: errorsDoc });
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sourceFiles(path) : name.endsWith('.ts') ? [path] : [];
  });
}

describe('docs/errors.md', () => {
  it('lists every problem code and error class as the source defines them', async () => {
    const doc = readFileSync(errorsDoc, 'utf8');
    const expected = await regenerate(doc);
    if (process.env['UPDATE_DOCS'] === '1') writeFileSync(errorsDoc, expected);
    else expect(doc).toBe(expected);
    expect(expected).not.toContain('TODO: describe');
  });

  it('covers every exported error class', () => {
    const classes = Object.entries(pollkit)
      .filter(
        ([, value]) =>
          typeof value === 'function' && (value === PollkitError || value.prototype instanceof PollkitError),
      )
      .map(([name]) => name)
      .sort();
    expect(classes).toEqual(Object.keys(SAMPLES).sort());
  });

  it('documents every code the source raises with new PollkitError(…)', () => {
    const doc = readFileSync(errorsDoc, 'utf8');
    const raised = new Set<string>();
    for (const file of sourceFiles(join(root, 'src'))) {
      const text = readFileSync(file, 'utf8');
      for (const match of text.matchAll(/new PollkitError\(/g)) {
        const after = text.slice(match.index, match.index + 400);
        const code = /,\s*'([a-z][a-z0-9-]*)'/.exec(after)?.[1];
        if (code !== undefined && code !== 'example-code') raised.add(code);
      }
    }
    expect(raised.size).toBeGreaterThan(5);
    const missing = [...raised].filter((code) => !new RegExp(`^\\|\\s*\`${code}\`\\s*\\|`, 'm').test(doc));
    expect(missing).toEqual([]);
  });
});
