// Installs the packed tarball into a temporary project, as a user would, and checks that every subpath
// loads through both `import` and `require` (on this Node and, when NODE24 names a binary, on that one
// too), that all subpaths share one copy of the core, that the CommonJS build works without
// require(esm), and that the client entry bundles for browsers within its size budget.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';
import { entries } from './entries.mjs';

const CLIENT_BUDGET_BYTES = 25 * 1024; // minified + gzipped, the whole client entry with its dependencies

const root = new URL('..', import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), 'pollkit-smoke-'));
const run = (cmd, args, options = {}) =>
  execFileSync(cmd, args, { cwd: work, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...options });

try {
  const packed = JSON.parse(run('npm', ['pack', root, '--json', '--pack-destination', work]))[0];
  const tarball = join(work, packed.filename);
  writeFileSync(join(work, 'package.json'), JSON.stringify({ name: 'smoke', private: true }));
  run('npm', ['install', '--no-audit', '--no-fund', '--no-package-lock', tarball]);

  const specifiers = entries.map((e) => (e.subpath === '.' ? 'pollkit' : `pollkit/${e.subpath.slice(2)}`));
  const list = JSON.stringify(specifiers);
  const cjs = `
    const mods = ${list}.map((s) => [s, require(s)]);
    for (const [s, m] of mods) if (Object.keys(m).length === 0) throw new Error(s + ' exports nothing');
    const bases = new Set(mods.map(([, m]) => m.PollkitError).filter(Boolean));
    if (bases.size !== 1) throw new Error('subpaths carry ' + bases.size + ' copies of PollkitError');
    // Adapters share the core chunk too: an error built by pollkit/redis is a root PollkitError.
    if (!(new (require('pollkit/redis').StoreUnavailableError)('x') instanceof require('pollkit').PollkitError))
      throw new Error('pollkit/redis carries its own copy of the core');
    // pollkit/bullmq imports bullmq as types only: it loads where bullmq is not installed.
    let bullmqInstalled = true;
    try { require.resolve('bullmq'); } catch { bullmqInstalled = false; }
    if (bullmqInstalled || typeof require('pollkit/bullmq').BullmqJobStore !== 'function')
      throw new Error('pollkit/bullmq should load without bullmq installed');
    const { retry } = require('pollkit');
    retry(async () => 'ok', { retries: 0 }).then((v) => { if (v !== 'ok') throw new Error('retry'); console.log('cjs ok', process.version); });
  `;
  const esm = `
    const mods = await Promise.all(${list}.map(async (s) => [s, await import(s)]));
    for (const [s, m] of mods) if (Object.keys(m).length === 0) throw new Error(s + ' exports nothing');
    const bases = new Set(mods.map(([, m]) => m.PollkitError).filter(Boolean));
    if (bases.size !== 1) throw new Error('subpaths carry ' + bases.size + ' copies of PollkitError');
    const { StoreUnavailableError } = await import('pollkit/redis');
    if (!(new StoreUnavailableError('x') instanceof (await import('pollkit')).PollkitError))
      throw new Error('pollkit/redis carries its own copy of the core');
    const { retry } = await import('pollkit');
    if ((await retry(async () => 'ok', { retries: 0 })) !== 'ok') throw new Error('retry');
    console.log('esm ok', process.version);
  `;
  const runtimes = [process.execPath, ...(process.env.NODE24 ? [process.env.NODE24] : [])];
  for (const node of runtimes) {
    process.stdout.write(run(node, ['-e', cjs]));
    process.stdout.write(run(node, ['--input-type=module', '-e', esm]));
  }
  // The CommonJS build must not lean on require(esm) (Node 20 before 20.19 has none).
  const version = Number(process.versions.node.split('.')[0]);
  if (version === 20 || version === 22) {
    process.stdout.write(run(process.execPath, ['--no-experimental-require-module', '-e', cjs]));
  }

  // Browser bundlers: the client entry must bundle for the browser platform with no Node built-ins.
  const bundle = await build({
    stdin: { contents: `export * from 'pollkit/client';`, resolveDir: work },
    bundle: true,
    minify: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    logLevel: 'silent',
  });
  const bytes = bundle.outputFiles[0].contents;
  const gzipped = gzipSync(bytes).length;
  console.log(
    `client entry for browsers: ${bytes.length} B minified, ${gzipped} B gzipped (budget ${CLIENT_BUDGET_BYTES} B)`,
  );
  if (gzipped > CLIENT_BUDGET_BYTES) throw new Error('client entry is over its size budget');

  const pkg = JSON.parse(readFileSync(join(work, 'node_modules/pollkit/package.json'), 'utf8'));
  console.log(`smoke: ${specifiers.length} subpaths of pollkit@${pkg.version} import and require cleanly`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
