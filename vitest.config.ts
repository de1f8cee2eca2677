import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (path: string): string => fileURLToPath(new URL(`./src/${path}`, import.meta.url));

export default defineConfig({
  resolve: {
    // Examples and tests import 'pollkit/…' as users do; during tests that resolves to the source.
    alias: [
      { find: /^pollkit$/, replacement: src('index.ts') },
      { find: /^pollkit\/(client|server|redis|bullmq)$/, replacement: src('$1/index.ts') },
      { find: /^pollkit\/(node|fetch|express|fastify|koa|hono|ws)$/, replacement: src('adapters/$1.ts') },
    ],
  },
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/browser/**', 'test/redis/**', 'test/bullmq/**', 'test/cdn/**', 'test/soak/**', 'node_modules/**'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
  },
});
