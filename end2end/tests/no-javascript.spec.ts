import { test, expect } from "@playwright/test";
import { signIn, uniqueName, SHOTS } from "./helpers";

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

/**
 * The forms that change something are plain HTML forms the server answers: with
 * JavaScript off a requester files a repository request (a refused one comes back
 * with what was typed and the same messages the script shows), and an admin with
 * JavaScript off approves it; the portal applies it.
 */
test("without JavaScript a request is submitted and an admin approves it", async ({ browser }) => {
  const requester = await (await browser.newContext({ javaScriptEnabled: false })).newPage();
  const admin = await (await browser.newContext({ javaScriptEnabled: false })).newPage();
  await signIn(requester, "nojs-rosa", "requester");
  await signIn(admin, "nojs-adam", "admin");

  await requester.goto("/requests/new");
  await requester.getByLabel("Repository name").fill("Not A Name");
  await requester.getByLabel("Team").fill("platform");
  await requester.getByLabel("Keep the last N images").fill("ten");
  await requester.getByRole("button", { name: "Submit request" }).click();
  // Refused by the server: the same page, what was typed still there, each problem at its field.
  await expect(requester).toHaveURL(/\/requests\/new$/);
  await expect(requester.locator("[data-field=name]")).not.toBeEmpty();
  await expect(requester.locator("[data-field=keep_last_images]")).toContainText("not a whole number");
  await expect(requester.locator("[data-field=justification]")).not.toBeEmpty();
  await expect(requester.getByLabel("Team")).toHaveValue("platform");
  await expect(requester.getByLabel("Keep the last N images")).toHaveValue("ten");
  await requester.screenshot({ path: `${SHOTS}/no-javascript-refused.png`, fullPage: true });

  const name = uniqueName("nojs");
  await requester.getByLabel("Repository name").fill(name);
  await requester.getByLabel("Keep the last N images").fill("10");
  await requester.getByLabel("Cost centre").fill("cc-1");
  await requester.getByLabel("Justification").fill("Built and tested without a script");
  await requester.getByRole("button", { name: "Submit request" }).click();
  await expect(requester).toHaveURL(/\/requests\/\d+$/);
  const id = requester.url().split("/").pop();
  await expect(requester.locator("main")).toContainText(`crytera/${name}`);
  await expect(requester.locator("[data-status]").first()).toHaveAttribute("data-status", "pending");

  await admin.goto(`/requests/${id}`);
  await admin.getByLabel("Comment (optional)").fill("approved from a browser without JavaScript");
  await admin.getByRole("button", { name: "Approve" }).click();
  await expect(admin).toHaveURL(new RegExp(`/requests/${id}$`));
  await expect
    .poll(async () => {
      await admin.reload();
      return admin.locator("[data-status]").first().getAttribute("data-status");
    }, { timeout: 20_000 })
    .toBe("applied");
  await expect(admin.locator("main")).toContainText("approved from a browser without JavaScript");
});

/**
 * With JavaScript on but the wasm slow to arrive: the form can be typed into at once,
 * hydration keeps what was typed (and the live checks start from it), and a submit
 * after hydration goes through the server function without a page load.
 */
test("text typed before the wasm loads is kept and sent by the enhanced form", async ({ page }) => {
  await signIn(page, "early-typist", "requester");
  // The wasm is held back until the test lets it through.
  let release = () => {};
  const gate = new Promise<void>((r) => (release = r));
  await page.route("**/*.wasm", async (route) => {
    await gate;
    await route.continue();
  });
  await page.goto("/requests/new");
  const form = page.getByTestId("new-request-form");
  const name = uniqueName("early");
  await page.getByLabel("Repository name").fill(name);
  await page.getByLabel("Team").fill("platform");
  await page.getByLabel("Cost centre").fill("cc-1");
  await page.getByLabel("Justification").fill("typed before the script arrived");
  await expect(form).toHaveAttribute("data-hydrated", "false");
  await expect(page.getByTestId("name-preview")).toHaveText("crytera/…");
  release();
  await expect(form).toHaveAttribute("data-hydrated", "true", { timeout: 15_000 });
  await expect(page.getByLabel("Repository name")).toHaveValue(name);
  await expect(page.getByLabel("Justification")).toHaveValue("typed before the script arrived");
  await expect(page.getByTestId("name-preview")).toHaveText(`crytera/${name}`);
  const rpc = page.waitForRequest("**/rpc/submit_repository_request");
  await page.getByRole("button", { name: "Submit request" }).click();
  await rpc;
  await expect(page).toHaveURL(/\/requests\/\d+$/);
  await expect(page.locator("main")).toContainText(`crytera/${name}`);
});
