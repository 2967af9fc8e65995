import { defineConfig } from "@playwright/test";

// Debian's /usr/bin/chromium: Playwright's own browser download is not available here.
// .ci/test starts moto and the portal, then runs these tests against BASE_URL.
const chromiumPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const baseURL = process.env.BASE_URL ?? "http://127.0.0.1:3000";

export default defineConfig({
  testDir: "./tests",
  globalSetup: "./global-setup.ts",
  timeout: 60_000,
  expect: { timeout: 15_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [["list"]],
  use: { baseURL, trace: "off" },
  projects: [
    {
      name: "debian-chromium",
      use: {
        browserName: "chromium",
        launchOptions: {
          executablePath: chromiumPath,
          args: [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
          ],
        },
      },
    },
  ],
});
