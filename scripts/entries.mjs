// The single list of public entry points. tsup builds exactly these, package.json's exports map must
// list exactly these (scripts/check-entries.mjs fails the build otherwise), and typedoc documents them.
/** @type {ReadonlyArray<{ subpath: string, name: string, source: string }>} */
export const entries = [
  { subpath: '.', name: 'index', source: 'src/index.ts' },
  { subpath: './client', name: 'client', source: 'src/client/index.ts' },
  { subpath: './server', name: 'server', source: 'src/server/index.ts' },
  { subpath: './node', name: 'node', source: 'src/adapters/node.ts' },
  { subpath: './fetch', name: 'fetch', source: 'src/adapters/fetch.ts' },
  { subpath: './express', name: 'express', source: 'src/adapters/express.ts' },
  { subpath: './fastify', name: 'fastify', source: 'src/adapters/fastify.ts' },
  { subpath: './koa', name: 'koa', source: 'src/adapters/koa.ts' },
  { subpath: './hono', name: 'hono', source: 'src/adapters/hono.ts' },
  { subpath: './ws', name: 'ws', source: 'src/adapters/ws.ts' },
  { subpath: './redis', name: 'redis', source: 'src/redis/index.ts' },
  { subpath: './bullmq', name: 'bullmq', source: 'src/bullmq/index.ts' },
];

/** The exports-map entry that a built entry point must have. */
export function exportFor(name) {
  return {
    import: { types: `./dist/${name}.d.ts`, default: `./dist/${name}.js` },
    require: { types: `./dist/${name}.d.cts`, default: `./dist/${name}.cjs` },
  };
}

/** The whole exports map derived from the entry list. */
export function expectedExports() {
  const map = {};
  for (const entry of entries) map[entry.subpath] = exportFor(entry.name);
  map['./package.json'] = './package.json';
  return map;
}
