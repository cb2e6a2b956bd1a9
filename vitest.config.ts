import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/helpers/build.ts', 'test/helpers/global-setup.ts'],
    testTimeout: 60_000,
    // A hook that starts a cluster of its own may need all three of its 30 s attempts
    // (infra/cluster/nats-cluster.ts) when both cores are busy.
    hookTimeout: 150_000,
    // Two cores: integration tests spawn real processes; keep the pressure bounded.
    maxWorkers: 2,
    pool: 'forks',
  },
})
