import { defineConfig, type Options } from 'tsup';
import { entries } from './scripts/entries.mjs';

const entry = Object.fromEntries(entries.map((e) => [e.name, e.source]));

const shared: Options = {
  entry,
  outDir: 'dist',
  target: 'es2022',
  sourcemap: true,
  // Splitting puts src/core in one shared chunk per format, so `instanceof PollkitError` holds
  // whichever subpath created the error.
  splitting: true,
  treeshake: true,
  dts: true,
  external: ['ws', 'ioredis', 'bullmq', 'express', 'fastify', 'koa', 'hono'],
};

export default defineConfig([
  { ...shared, format: 'esm', clean: true },
  { ...shared, format: 'cjs' },
]);
