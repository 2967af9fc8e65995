import { test, expect, Page } from "@playwright/test";
import { signIn, slowWasm, watchForErrors, uniqueName, SHOTS } from "./helpers";

// Script and HTML in every field people type into must show up as text, everywhere it is shown.
const PAYLOADS = [
  `<img src=x onerror="window.__xss='img'">`,
  `<script>window.__xss='script'</script>`,
  `"><svg onload="window.__xss='svg'">`,
];

/** The page ran none of the payloads and opened no dialog. */
async function inert(page: Page) {
  expect(await page.evaluate(() => (window as any).__xss)).toBeUndefined();
  expect(await page.locator("main img[src='x'], main svg[onload], main script:not([src])").count()).toBe(0);
}

test("script and HTML typed into any field render as inert text", async ({ browser }) => {
  const rita = await (await browser.newContext()).newPage();
  const adam = await (await browser.newContext()).newPage();
  const dialogs: string[] = [];
  for (const p of [rita, adam]) p.on("dialog", (d) => { dialogs.push(d.message()); d.dismiss(); });
  const errors = [...[rita, adam].map(watchForErrors)];
  await signIn(rita, "rita", "requester");
  await signIn(adam, "adam", "admin");

  // A justification full of payloads, through the form.
  await rita.goto("/requests/new");
  const name = uniqueName("xss");
  await rita.getByLabel("Repository name").fill(name);
  await rita.getByLabel("Team").fill(PAYLOADS[0]);
  await rita.getByLabel("Cost centre").fill("cc-1");
  await rita.getByLabel("Justification").fill(PAYLOADS.join(" "));
  await rita.getByRole("button", { name: "Submit request" }).click();
  // The tag refuses `<` and says so, quoting the character as text.
  await expect(rita.locator('[data-field="team"]')).toContainText("`<` is not allowed in a tag");
  await inert(rita);
  await rita.getByLabel("Team").fill("platform");
  await rita.getByRole("button", { name: "Submit request" }).click();
  await expect(rita).toHaveURL(/\/requests\/\d+$/);
  const url = rita.url();
  await expect(rita.getByText(PAYLOADS.join(" "))).toBeVisible();
  await inert(rita);

  // A decision comment full of payloads.
  await adam.goto(url);
  await adam.getByLabel("Comment (optional)").fill(PAYLOADS.join(" "));
  await adam.getByRole("button", { name: "Reject" }).click();
  await expect(adam.getByTestId("request-status")).toContainText("rejected");
  await expect(adam.getByText(PAYLOADS.join(" ")).first()).toBeVisible();
  await inert(adam);

  // An API token named with a payload.
  await rita.goto("/tokens");
  await rita.getByLabel("Name").fill(PAYLOADS[1]);
  await rita.getByRole("button", { name: "Create token" }).click();
  await expect(rita.getByTestId("new-token")).toContainText(PAYLOADS[1]);
  await expect(rita.getByTestId("tokens")).toContainText(PAYLOADS[1]);
  await inert(rita);

  // Every page that shows them: the request, the lists, the audit trail, the tokens.
  for (const path of [url, "/", "/queue", "/audit", "/audit?action=request_rejected"]) {
    await adam.goto(path);
    await inert(adam);
  }
  await adam.goto("/audit");
  await expect(adam.getByText(PAYLOADS.join(" ")).first()).toBeVisible();
  await expect(adam.getByText(PAYLOADS[1], { exact: false }).first()).toBeVisible();
  // The sign-in page shows only known error codes, never text from the URL.
  await rita.goto(`/login?error=${encodeURIComponent(PAYLOADS[0])}`);
  await expect(rita.getByTestId("login-error")).toHaveCount(0);
  await inert(rita);
  await rita.goto("/login?error=mismatch");
  await expect(rita.getByTestId("login-error")).toHaveText(/did not match this browser/);

  expect(dialogs).toEqual([]);
  expect(errors.flat()).toEqual([]);
});

test("an auditor reads everything and is offered nothing to change", async ({ page }) => {
  const errors = watchForErrors(page);
  await signIn(page, "aude", "auditor");
  const nav = page.getByRole("navigation", { name: "Main" });
  await expect(nav.getByRole("link", { name: "Audit" })).toBeVisible();
  await expect(nav.getByRole("link", { name: "New request" })).toHaveCount(0);
  await expect(nav.getByRole("link", { name: "Queue" })).toHaveCount(0);
  await page.goto("/audit");
  await expect(page.getByRole("heading", { name: "Audit history" })).toBeVisible();
  expect(errors).toEqual([]);
});

const OIDC_BASE = process.env.OIDC_BASE_URL;
const ISSUER = process.env.OIDC_ISSUER;

test("signing in through the OpenID Connect redirect", async ({ page }) => {
  test.skip(!OIDC_BASE || !ISSUER, "set OIDC_BASE_URL and OIDC_ISSUER (.ci/test starts both)");
  const errors = watchForErrors(page);
  const queued = await page.request.post(`${ISSUER}/__mock/next-login`, {
    data: { sub: "olivia", preferred_username: "olivia", email: "olivia@crytera.example", groups: ["ecr-admins"] },
  });
  expect(queued.ok()).toBeTruthy();
  await page.goto(`${OIDC_BASE}/login`);
  await expect(page.getByLabel("User name")).toHaveCount(0); // no local sign-in in this mode
  await page.screenshot({ path: `${SHOTS}/sign-in-sso.png` });
  await page.getByTestId("sso").click();
  // The provider redirects straight back; we land on the requests page, signed in.
  await expect(page.getByTestId("current-user")).toContainText("olivia");
  await expect(page.getByTestId("current-user")).toContainText("admin");
  expect(new URL(page.url()).origin).toBe(new URL(OIDC_BASE!).origin);

  // A provider refusal comes back as a clear message on the sign-in page.
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.request.post(`${ISSUER}/__mock/next-login`, { data: { error: "access_denied" } });
  await page.goto(`${OIDC_BASE}/login`);
  await page.getByTestId("sso").click();
  await expect(page.getByTestId("login-error")).toContainText("The identity provider did not sign you in");
  expect(errors).toEqual([]);
});

test("a pipeline token: created in the UI, used as a Bearer token, revoked", async ({ page, playwright }) => {
  const errors = watchForErrors(page);
  await signIn(page, uniqueName("pipeline-owner"), "requester");
  // The form works before the wasm has loaded (a plain form the server answers, the secret
  // in that answer): typed and sent at once, whichever of the two gets it.
  await slowWasm(page);
  await page.getByRole("link", { name: "API tokens" }).click();
  await expect(page.getByText("No API tokens yet")).toBeVisible();
  await expect(page.getByLabel("Name")).toBeEnabled();
  await page.getByLabel("Name").fill("ci-deploy");
  await page.getByLabel("submit requests only").check();
  await page.getByLabel("Valid for (days)").fill("30");
  await page.getByRole("button", { name: "Create token" }).click();
  const secret = await page.getByLabel("Token", { exact: true }).inputValue();
  expect(secret).toMatch(/^ecrp_[0-9a-f]{64}$/);
  await expect(page.getByTestId("tokens")).toContainText("active");
  await expect(page.getByTestId("tokens")).toContainText("ci-deploy");
  await page.screenshot({ path: `${SHOTS}/api-tokens.png`, fullPage: true });

  // A pipeline (no cookies) submits with it.
  const ci = await playwright.request.newContext({ baseURL: new URL(page.url()).origin });
  const headers = { authorization: `Bearer ${secret}` };
  const made = await ci.post("/api/v1/requests", {
    headers,
    data: { name: uniqueName("ci"), team: "platform", cost_center: "cc-1", justification: "built by CI" },
  });
  expect(made.status()).toBe(201);
  // It cannot do more than its scope.
  expect((await ci.get("/api/v1/audit", { headers })).status()).toBe(403);

  // Revoked in the UI: refused from then on.
  await page.goto("/tokens");
  await expect(page.getByTestId("tokens")).not.toContainText("never");
  await page.getByRole("button", { name: "Revoke token ci-deploy" }).click();
  await expect(page.getByTestId("tokens")).toContainText("revoked");
  expect((await ci.get("/api/v1/requests", { headers })).status()).toBe(401);
  await ci.dispose();
  expect(errors).toEqual([]);
});
