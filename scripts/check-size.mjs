// Size budgets for what a browser imports from pollkit/client: each case is bundled from the built
// ESM files with esbuild (browser platform, minified, tree-shaken), gzipped at level 9, and compared
// with its budget. Exits non-zero when any case is over budget, so CI fails.
//
//   node scripts/check-size.mjs           check every budget
//   node scripts/check-size.mjs --json    print the figures as JSON as well
//   node scripts/check-size.mjs 'export { Subscriber } from "pollkit/client"'   measure any import
//
// scripts/size-floor.mjs measures the same cases with parts taken away (see there).
import { build } from 'esbuild';
import { Buffer } from 'node:buffer';
import { gzipSync } from 'node:zlib';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const entry = join(root, 'dist/client.js');

/**
 * Sizes in bytes (1 KB = 1,000 bytes, minified + gzip -9). `budget` is what CI enforces: today's size
 * with a little room, so that any growth is a decision rather than an accident. `target` is issue 16's
 * goal; none is met, and scripts/size-floor.mjs shows why (what is left with every message, pause,
 * the retry budget, HTTP-date parsing and the option checks taken away), so the budgets stand just
 * above today's figures rather than at the targets (docs/benchmarks.md#bundle-size).
 */
export const cases = [
  { name: 'all of pollkit/client', code: `export * from 'pollkit/client';`, budget: 19_830, target: 10_000 },
  {
    name: 'pollJob + JobClient',
    code: `export { pollJob, JobClient } from 'pollkit/client';`,
    budget: 8_090,
    target: 4_000,
  },
  {
    name: 'Subscriber + SseTransport',
    code: `export { Subscriber, SseTransport } from 'pollkit/client';`,
    budget: 6_950,
    target: 4_500,
  },
  {
    name: 'Subscriber + WebSocketTransport',
    code: `export { Subscriber, WebSocketTransport } from 'pollkit/client';`,
    budget: 5_820,
    target: 4_500,
  },
  {
    name: 'Subscriber + LongPollTransport',
    code: `export { Subscriber, LongPollTransport } from 'pollkit/client';`,
    budget: 5_970,
    target: 4_500,
  },
  // LongPollTransport is handed a TopicClient, so this is what using it costs.
  {
    name: 'Subscriber + LongPoll + TopicClient',
    code: `export { Subscriber, LongPollTransport, TopicClient } from 'pollkit/client';`,
    budget: 8_580,
  },
  { name: 'LongPoller', code: `export { LongPoller } from 'pollkit/client';`, budget: 4_560, target: 4_000 },
  { name: 'followJob', code: `export { followJob } from 'pollkit/client';`, budget: 14_390 },
  { name: 'subscribeTopic', code: `export { subscribeTopic } from 'pollkit/client';`, budget: 11_350 },
];

/**
 * Bundles `code` as a browser would (from dist/client.js, or from `from` with esbuild `plugins`) and
 * returns the minified bytes with their size, before and after gzip -9.
 */
export async function measure(code, { from = entry, plugins = [], transform = (text) => text } = {}) {
  const result = await build({
    stdin: { contents: code, resolveDir: root, loader: 'js' },
    bundle: true,
    write: false,
    minify: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    treeShaking: true,
    alias: { 'pollkit/client': from },
    plugins,
    logLevel: 'silent',
  });
  const text = transform(result.outputFiles[0].text);
  return { min: Buffer.byteLength(text), gzip: gzipSync(text, { level: 9 }).length };
}

if (process.argv[1] !== fileURLToPath(import.meta.url)) {
  // Imported for its cases and measure(): nothing to check.
} else if (!existsSync(entry)) {
  console.error('dist/client.js is missing: run `npm run build` first');
  process.exit(1);
} else {
  await main();
}

async function main() {
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
      `${ok ? 'ok  ' : 'OVER'} ${c.name.padEnd(36)} ${kb(gzip)} KB gzip (${kb(min)} KB min), budget ${budget}${target}`,
    );
  }
  if (process.argv.includes('--json')) console.log(JSON.stringify(rows));
  if (over > 0) {
    console.error(`${over} size budget(s) exceeded`);
    process.exit(1);
  }
}
