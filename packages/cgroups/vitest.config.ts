import { defineConfig } from 'vitest/config'

// Tests run as root against the real kernel: they create cgroups, place processes in them,
// OOM-kill, freeze and kill them for real. One worker, one file at a time, so that the hygiene
// checks (processes, cgroup directories) of a file see only what that file did.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    fileParallelism: false,
    maxWorkers: 1,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    teardownTimeout: 30_000,
    globalSetup: ['./test/setup/global.ts'],
    setupFiles: ['./test/setup/hygiene.ts'],
  },
})
