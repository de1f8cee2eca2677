// `npm run bench`: runs every `bench:*` script of package.json in turn, passing on extra arguments
// (for example `npm run bench -- --quick`). Each benchmark prints ratios against its own baseline.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const names = Object.keys(pkg.scripts).filter((name) => name.startsWith('bench:'));
const extra = process.argv.slice(2);
let failed = 0;
for (const name of names) {
  console.log(`\n### npm run ${name} ${extra.join(' ')}`);
  const result = spawnSync('npm', ['run', '--silent', name, '--', ...extra], { stdio: 'inherit' });
  if (result.status !== 0) failed++;
}
process.exit(failed === 0 ? 0 : 1);
