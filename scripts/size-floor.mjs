// Where the bytes of each size case are, and what is left when parts are taken away: the floor under
// issue 16's targets. Each case of scripts/check-size.mjs is bundled from the TypeScript sources (so
// single modules can be replaced) the same way check-size bundles dist/, then again with, cumulatively:
//
//   - no messages: every string that reads as prose (two words with a space between) emptied, in the
//     minified output; error classes, codes and every branch stay. What any wording could save.
//   - no pause: ActivityGate replaced by a gate that never pauses (pauseWhenHidden/Offline ignored).
//   - no budget: the token bucket and RetryBudget replaced by ones that always grant a retry.
//   - no HTTP-dates: parseRetryAfter reads delay-seconds only.
//   - no option checks: checkNumber, checkFunction and invalidOption do nothing.
//
// The last column is a feature set the issue says to keep ("jitter, budgets, resume, typed errors")
// already cut down; where it is still above a target, no rewrite of the same features meets it.
//
//   node scripts/size-floor.mjs           the cases of check-size.mjs, then the parts they are made of
//   node scripts/size-floor.mjs --json
import ts from 'typescript';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { cases, measure } from './check-size.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(root, 'src/client/index.ts');

/** Empties every string and template literal in `code` that reads as prose. */
function withoutMessages(code) {
  const file = ts.createSourceFile('bundle.js', code, ts.ScriptTarget.ES2022, true, ts.ScriptKind.JS);
  const prose = /[a-z]{2,} [a-z]{2,}/i;
  const spans = [];
  const visit = (node) => {
    const literal =
      ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node) || ts.isTemplateExpression(node);
    if (literal && prose.test(node.getText(file))) spans.push([node.getStart(file), node.getEnd()]);
    else ts.forEachChild(node, visit);
  };
  visit(file);
  let out = code;
  for (const [start, end] of spans.reverse()) out = `${out.slice(0, start)}""${out.slice(end)}`;
  return out;
}

/** Module replacements, by path under src/, as the steps below take them away. */
const STUBS = {
  pause: {
    'client/activity.ts':
      'export class ActivityGate { get pauseReason() { return undefined; } get active() { return true; } whenActive() { return Promise.resolve(); } dispose() {} }',
  },
  // A poller's default budget is the bare token bucket; RetryBudget (imported or not) wraps the same one.
  budget: {
    'client/token-bucket.ts':
      'export function tokenBucket() { return { level: () => 1, wait: () => 0, reserve: () => 0, recordSuccess() {} }; }',
    'client/retry-budget.ts':
      'export class RetryBudget { tryAcquire() { return true; } reserve() { return 0; } recordSuccess() {} msUntilAvailable() { return 0; } get tokens() { return 1; } }',
  },
  dates: {
    'core/retry-after.ts':
      'export function parseRetryAfter(value) { return value == null || !/^\\d+(\\.\\d+)?$/.test(value.trim()) ? undefined : Math.round(Number(value) * 1000); }',
  },
  checks: {
    'core/checks.ts':
      'export function invalidOption(owner, name) { throw new TypeError(name); } export function checkNumber() {} export function checkFunction() {}',
  },
};

function stubbing(stubs) {
  const replaced = new Map(Object.entries(stubs).map(([path, contents]) => [join(root, 'src', path), contents]));
  return {
    name: 'size-floor-stubs',
    setup(build) {
      build.onLoad({ filter: /\.ts$/ }, (args) =>
        replaced.has(args.path) ? { contents: replaced.get(args.path), loader: 'ts' } : undefined,
      );
    },
  };
}

const steps = [
  { name: 'as shipped', strip: false, take: [] },
  { name: 'no messages', strip: true, take: [] },
  { name: '+ no pause', strip: true, take: ['pause'] },
  { name: '+ no budget', strip: true, take: ['pause', 'budget'] },
  { name: '+ no HTTP-dates', strip: true, take: ['pause', 'budget', 'dates'] },
  { name: '+ no option checks', strip: true, take: ['pause', 'budget', 'dates', 'checks'] },
];

// The parts the targeted cases are made of, measured alone.
const parts = ['Subscriber', 'SseTransport', 'WebSocketTransport', 'ShortPoller', 'JobClient', 'TopicClient'].map(
  (name) => ({ name: `${name} alone`, code: `export { ${name} } from 'pollkit/client';` }),
);

const kb = (n) => (n / 1000).toFixed(2);
const rows = [];
console.log(['case'.padEnd(36), ...steps.map((s) => s.name.padStart(19)), 'target'.padStart(8)].join(''));
for (const c of [...cases, ...parts]) {
  const sizes = [];
  for (const step of steps) {
    const stubs = Object.assign({}, ...step.take.map((name) => STUBS[name]));
    const { gzip } = await measure(c.code, {
      from: source,
      plugins: [stubbing(stubs)],
      transform: step.strip ? withoutMessages : undefined,
    });
    sizes.push(gzip);
  }
  rows.push({ name: c.name, target: c.target, sizes: Object.fromEntries(steps.map((s, i) => [s.name, sizes[i]])) });
  const target = c.target === undefined ? '-' : kb(c.target);
  console.log([c.name.padEnd(36), ...sizes.map((size) => `${kb(size)} KB`.padStart(19)), target.padStart(8)].join(''));
}
if (process.argv.includes('--json')) console.log(JSON.stringify(rows));
