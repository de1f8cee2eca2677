// Fails when package.json's exports map, typedoc's entry points and scripts/entries.mjs disagree, so
// that a subpath cannot be built without being exported, or exported without being built or documented.
import { readFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import { entries, expectedExports } from './entries.mjs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const typedoc = JSON.parse(readFileSync(new URL('../typedoc.json', import.meta.url), 'utf8'));
const problems = [];

const expected = expectedExports();
if (!isDeepStrictEqual(pkg.exports, expected)) {
  problems.push(
    'package.json "exports" does not match scripts/entries.mjs. Expected:\n' + JSON.stringify(expected, null, 2),
  );
}
const sources = entries.map((e) => e.source).sort();
const documented = [...(typedoc.entryPoints ?? [])].map((p) => p.replace(/^\.\//, '')).sort();
if (!isDeepStrictEqual(sources, documented)) {
  problems.push(`typedoc.json "entryPoints" ${JSON.stringify(documented)} != entries ${JSON.stringify(sources)}`);
}

if (problems.length > 0) {
  for (const p of problems) console.error(`check-entries: ${p}`);
  process.exit(1);
}
console.log(`check-entries: ${entries.length} entry points agree across tsup, exports and typedoc`);
