// Size budgets for what a browser imports from pollkit/client: each case is bundled from the built
// ESM files with esbuild (browser platform, minified, tree-shaken), gzipped at level 9, and compared
// with its budget. Exits non-zero when any case is over budget, so CI fails.
//
//   node scripts/check-size.mjs           check every budget
//   node scripts/check-size.mjs --json    print the figures as JSON as well
import { build } from 'esbuild';
import { gzipSync } from 'node:zlib';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const entry = join(root, 'dist/client.js');

/**
 * Sizes in bytes (1 KB = 1,000 bytes, minified + gzip -9). `budget` is what CI enforces: today's size
 * with a little room, so that any growth is a decision rather than an accident. `target` is where
 * issue 16 wants it; until the poller and subscriber stack is rewritten smaller, the two differ, and
 * this script prints both.
 */
export const cases = [
  { name: 'all of pollkit/client', code: `export * from 'pollkit/client';`, budget: 21_300, target: 10_000 },
  {
    name: 'pollJob + JobClient',
    code: `export { pollJob, JobClient } from 'pollkit/client';`,
    budget: 9_550,
    target: 4_000,
  },
  {
    name: 'Subscriber + SseTransport',
    code: `export { Subscriber, SseTransport } from 'pollkit/client';`,
    budget: 8_200,
    target: 4_500,
  },
  {
    name: 'Subscriber + WebSocketTransport',
    code: `export { Subscriber, WebSocketTransport } from 'pollkit/client';`,
    budget: 7_000,
    target: 4_500,
  },
  {
    name: 'Subscriber + LongPollTransport',
    code: `export { Subscriber, LongPollTransport } from 'pollkit/client';`,
    budget: 10_350,
    target: 4_500,
  },
  { name: 'LongPoller', code: `export { LongPoller } from 'pollkit/client';`, budget: 6_150, target: 4_000 },
  { name: 'followJob', code: `export { followJob } from 'pollkit/client';`, budget: 16_600 },
  { name: 'subscribeTopic', code: `export { subscribeTopic } from 'pollkit/client';`, budget: 15_800 },
];

async function measure(code) {
  const result = await build({
    stdin: { contents: code, resolveDir: root, loader: 'js' },
    bundle: true,
    write: false,
    minify: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    treeShaking: true,
    alias: { 'pollkit/client': entry },
    logLevel: 'silent',
  });
  const bytes = result.outputFiles[0].contents;
  return { min: bytes.length, gzip: gzipSync(bytes, { level: 9 }).length };
}

if (!existsSync(entry)) {
  console.error('dist/client.js is missing: run `npm run build` first');
  process.exit(1);
}
const extra = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const all = extra.length > 0 ? extra.map((code) => ({ name: code, code, budget: Infinity })) : cases;
let over = 0;
const rows = [];
for (const c of all) {
  const { min, gzip } = await measure(c.code);
  const ok = gzip <= c.budget;
  if (!ok) over += 1;
  rows.push({ name: c.name, min, gzip, budget: c.budget, target: c.target, ok });
  const kb = (n) => (n / 1000).toFixed(2).padStart(6);
  const budget = Number.isFinite(c.budget) ? `${kb(c.budget)} KB` : '      -';
  const target = c.target === undefined ? '' : `, target ${kb(c.target)} KB${gzip <= c.target ? ' (met)' : ''}`;
  console.log(
    `${ok ? 'ok  ' : 'OVER'} ${c.name.padEnd(34)} ${kb(gzip)} KB gzip (${kb(min)} KB min), budget ${budget}${target}`,
  );
}
if (process.argv.includes('--json')) console.log(JSON.stringify(rows));
if (over > 0) {
  console.error(`${over} size budget(s) exceeded`);
  process.exit(1);
}
