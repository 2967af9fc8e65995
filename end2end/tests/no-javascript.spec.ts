import { test, expect } from "@playwright/test";

/**
 * A new user with JavaScript off (or before the wasm has loaded): every page
 * arrives whole from the server, so its content is there, never "Loading…".
 */
test("without JavaScript every page shows its content", async ({ browser }) => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto("/login");
  await expect(page.getByRole("heading", { level: 1 })).toBeVisible();
  await expect(page.getByLabel("User name")).toBeVisible();
  // The sign-in form is plain HTML: it works without JavaScript.
  await page.getByLabel("User name").fill("nojs");
  await page.getByLabel("Admin", { exact: true }).check();
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByTestId("current-user")).toContainText("nojs");
  for (const path of ["/", "/requests/new", "/requests/access", "/queue", "/repositories", "/terraform/import", "/audit", "/tokens", "/users", "/notifications"]) {
    await page.goto(path);
    await expect(page.locator("main h1").first(), path).toBeVisible();
    await expect(page.locator("main"), path).not.toContainText("Loading…");
  }
  await context.close();
});
