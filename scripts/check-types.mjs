// The consumer type-check: packs pollkit, installs the tarball into a scratch project, and compiles
// code a user would copy (every ```ts block of README.md, docs/client.md and docs/production.md that imports pollkit,
// each a complete program, plus test/types/consumer.ts) under every setup a consumer may have:
//   nodenext and node16, each as ESM (.mts) and CommonJS (.cts) files; bundler (.ts)
// all with strict, exactOptionalPropertyTypes and skipLibCheck: false, so the published .d.ts files
// themselves are checked too. attw checks that types resolve; this checks what they say.
//
//   node scripts/check-types.mjs          (after npm run build)
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
if (!existsSync(join(root, 'dist/index.d.ts'))) {
  console.error('dist/ is missing: run `npm run build` first');
  process.exit(1);
}

/** Every ```ts block that imports pollkit, from the pages a user copies whole programs from. */
export function snippets() {
  const files = ['README.md', 'docs/client.md', 'docs/production.md'];
  const found = [];
  for (const file of files) {
    const text = readFileSync(join(root, file), 'utf8');
    const blocks = text.matchAll(/^```ts\n([\s\S]*?)^```$/gm);
    for (const block of blocks) {
      const code = block[1];
      if (!/from 'pollkit(\/[a-z]+)?'/.test(code)) continue;
      const line = text.slice(0, block.index).split('\n').length;
      found.push({ where: `${file}:${line}`, code });
    }
  }
  return found;
}

// A CommonJS file has no top-level await: its statements go into an async function, imports stay on top.
function asCommonJs(code) {
  const lines = code.split('\n');
  const imports = [];
  const body = [];
  let inImport = false;
  for (const line of lines) {
    if (inImport || /^import\s/.test(line)) {
      imports.push(line);
      inImport = !/;\s*$/.test(line);
    } else body.push(line);
  }
  return `${imports.join('\n')}\nexport async function snippet(): Promise<void> {\n${body.join('\n')}\n}\n`;
}

const work = mkdtempSync(join(tmpdir(), 'pollkit-types-'));
try {
  const packed = execFileSync('npm', ['pack', '--silent', '--pack-destination', work], { cwd: root, encoding: 'utf8' })
    .trim()
    .split('\n')
    .at(-1);
  const modules = join(work, 'node_modules');
  mkdirSync(join(modules, 'pollkit'), { recursive: true });
  execFileSync('tar', ['-xzf', join(work, packed), '-C', join(modules, 'pollkit'), '--strip-components=1']);
  // Everything else the consumer needs (typescript, @types/node, ws, @types/ws, frameworks, the runtime
  // dependencies) comes from this checkout's node_modules, linked rather than downloaded.
  for (const name of readdirSync(join(root, 'node_modules'))) {
    if (name === 'pollkit' || name.startsWith('.')) continue;
    symlinkSync(join(root, 'node_modules', name), join(modules, name));
  }

  const sources = [
    ...snippets(),
    { where: 'test/types/consumer.ts', code: readFileSync(join(root, 'test/types/consumer.ts'), 'utf8'), module: true },
  ];
  const names = [];
  sources.forEach(({ where, code, module }, i) => {
    const name = `s${i}`;
    names.push({ name, where });
    const header = `// from ${where}\n`;
    writeFileSync(join(work, `${name}.mts`), header + code);
    writeFileSync(join(work, `${name}.ts`), header + code);
    writeFileSync(join(work, `${name}.cts`), header + (module ? code : asCommonJs(code)));
  });
  writeFileSync(join(work, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));

  const strict = {
    strict: true,
    exactOptionalPropertyTypes: true,
    skipLibCheck: false,
    noEmit: true,
    target: 'es2022',
    lib: ['es2022', 'dom', 'dom.iterable'],
    types: ['node'],
  };
  const setups = [
    { name: 'nodenext, ESM files', module: 'nodenext', moduleResolution: 'nodenext', ext: 'mts' },
    { name: 'nodenext, CJS files', module: 'nodenext', moduleResolution: 'nodenext', ext: 'cts' },
    { name: 'node16, ESM files', module: 'node16', moduleResolution: 'node16', ext: 'mts' },
    { name: 'node16, CJS files', module: 'node16', moduleResolution: 'node16', ext: 'cts' },
    { name: 'bundler', module: 'esnext', moduleResolution: 'bundler', ext: 'ts' },
  ];
  const tsc = join(root, 'node_modules/typescript/bin/tsc');
  let failed = 0;
  for (const setup of setups) {
    const config = {
      compilerOptions: { ...strict, module: setup.module, moduleResolution: setup.moduleResolution },
      files: names.map(({ name }) => `${name}.${setup.ext}`),
    };
    const file = `tsconfig.${setup.ext}.${setup.module}.json`;
    writeFileSync(join(work, file), JSON.stringify(config, null, 2));
    try {
      execFileSync(process.execPath, [tsc, '-p', file], { cwd: work, encoding: 'utf8', stdio: 'pipe' });
      console.log(`ok   ${setup.name} (${names.length} files)`);
    } catch (error) {
      failed++;
      console.log(`FAIL ${setup.name}`);
      const output = `${error.stdout ?? ''}${error.stderr ?? ''}`;
      // Name the README or docs block each error came from.
      console.log(output.replace(/^s(\d+)\.(\w+)/gm, (m, i) => `${names[Number(i)].where} [${m}]`));
    }
  }
  if (failed > 0) {
    console.error(`${failed} of ${setups.length} consumer setups fail to type-check`);
    process.exitCode = 1;
  }
} finally {
  if (!process.env.KEEP_TYPES_WORKDIR) rmSync(work, { recursive: true, force: true });
  else console.log(`kept ${work}`);
}
