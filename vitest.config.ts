import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    testTimeout: 60_000,
    // A hook that starts a cluster of its own may need all three of its 30 s attempts
    // (infra/cluster/nats-cluster.ts) when both cores are busy.
    hookTimeout: 150_000,
    // Two cores: integration tests spawn real processes; keep the pressure bounded.
    maxWorkers: 2,
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: {
          // Files of pure functions, statecharts with stub actors and single modules on temporary
          // directories: no cluster, no build, no state kept between files. Importing the modules
          // once per worker instead of once per file saves about a third of their run
          // (80 s → 53 s here).
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          isolate: false,
        },
      },
      {
        extends: true,
        test: {
          // Real processes, the suite's NATS cluster and DHT (global-setup.ts), the built CLI.
          // Not isolated either: each worker imports the product once instead of once per file
          // (import time 124 s → 29 s, the whole run 797–858 s → 712 s here). Every file starts
          // and stops what it uses in its own hooks, and none may rely on a fresh module state.
          name: 'system',
          include: ['test/**/*.test.ts'],
          exclude: ['test/unit/**'],
          globalSetup: ['test/helpers/build.ts', 'test/helpers/global-setup.ts'],
          isolate: false,
        },
      },
    ],
  },
})
