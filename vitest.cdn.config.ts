import { defineConfig } from 'vitest/config';
import base from './vitest.config.js';

// The shared-cache suite (`npm run test:cdn`): it starts Debian's nginx on free ports in front of
// origins it starts itself, with thousands of clients, so it runs apart from the default suite and one
// file at a time.
export default defineConfig({
  resolve: base.resolve ?? {},
  test: {
    include: ['test/cdn/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    fileParallelism: false,
  },
});
