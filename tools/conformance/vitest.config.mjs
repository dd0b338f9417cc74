import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["conformance.test.mjs"],
    // Tests that set no timeout of their own may wait for a full server
    // long-poll; the runner keeps that short, this is only a ceiling.
    testTimeout: 30000,
    hookTimeout: 30000,
  },
})
