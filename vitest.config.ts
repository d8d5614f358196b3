import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Simulated time makes every test CPU-bound and short; a test that needs more is a hang.
    testTimeout: 30_000,
  },
});
