// Sums vitest's JSON reports into one "N passed, N failed" line. Steps that failed without a report
// (lint, build, …) count as failures too, so a red step can never read as green.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const [dir, failedStepsArg = '0'] = process.argv.slice(2);
let passed = 0;
let failed = 0;
let skipped = 0;
const lines = [];
for (const file of readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .sort()) {
  const report = JSON.parse(readFileSync(join(dir, file), 'utf8'));
  passed += report.numPassedTests;
  failed += report.numFailedTests;
  skipped += report.numPendingTests + (report.numTodoTests ?? 0);
  lines.push(`${file}: ${report.numPassedTests} passed, ${report.numFailedTests} failed`);
  if (report.numTotalTests === 0) {
    lines.push(`${file}: ran no test`);
    failed += 1;
  }
}
const failedSteps = Number(failedStepsArg);
for (const line of lines) console.log(line);
if (lines.length === 0) failed += 1;
console.log(`${passed} passed, ${failed + failedSteps} failed${skipped > 0 ? `, ${skipped} skipped` : ''}`);
process.exit(failed + failedSteps > 0 ? 1 : 0);
