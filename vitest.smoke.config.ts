import { defineConfig } from 'vitest/config';

/** The torture suite's and the benchmarks' quick versions (npm run test:smoke). */
export default defineConfig({
  test: {
    include: ['test/**/*-smoke.test.ts'],
    // bench/ and torture/ are compiled once for all of them.
    globalSetup: ['test/smoke-setup.ts'],
    testTimeout: 600_000,
    hookTimeout: 120_000,
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
  },
});
