// Every public declaration carries a fenced @example: typedoc's own validation only demands a
// summary, so this reads its JSON output and names each declaration that lacks one.
import { readFileSync } from 'node:fs';

const project = JSON.parse(readFileSync(new URL('../docs/api/api.json', import.meta.url), 'utf8'));
// Kinds that users import by name: class, interface, function, variable, type alias, enum.
const TOP_LEVEL = new Set([128, 256, 64, 32, 2097152, 8]);
const missing = new Set();
let checked = 0;

const hasExample = (comment) =>
  comment?.blockTags?.some((tag) => tag.tag === '@example' && tag.content.some((part) => part.kind === 'code'));

function visit(node, path) {
  if (TOP_LEVEL.has(node.kind)) {
    checked++;
    const comment = node.comment ?? node.signatures?.[0]?.comment;
    const isConstant = node.kind === 32 && ['literal', 'intrinsic'].includes(node.type?.type);
    const isPlainData = node.kind === 256 || node.kind === 2097152 || isConstant;
    // Options interfaces and data shapes document their fields; what users call needs an example.
    if (!isPlainData && !hasExample(comment)) missing.add(`${path}${node.name}`);
  }
  for (const child of node.children ?? []) visit(child, node.kind === 2 ? `${node.name}: ` : path);
}
visit(project, '');
if (missing.size > 0) {
  console.error(`check-docs: ${missing.size} public declarations lack a fenced @example:`);
  for (const name of [...missing].sort()) console.error(`  ${name}`);
  process.exit(1);
}
console.log(`check-docs: ${checked} public declarations documented, each callable one with an @example`);
