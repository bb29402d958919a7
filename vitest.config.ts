import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The torture and benchmark smoke runs are `npm run test:smoke`
    // (vitest.smoke.config.ts): minutes of their own, kept out of the
    // everyday run; CI runs both.
    exclude: [...configDefaults.exclude, 'test/**/*-smoke.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Tests spawn real rsync and real reposnap processes; two cores, so two forks.
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
  },
});
