import { defineConfig } from 'vitest/config';
import base from './vitest.config.js';

// The headless-Chromium suite: `npm run test:browser` (CI installs Debian's chromium first).
export default defineConfig({
  resolve: base.resolve ?? {},
  test: { include: ['test/browser/**/*.test.ts'], testTimeout: 60_000, hookTimeout: 60_000, fileParallelism: false },
});
