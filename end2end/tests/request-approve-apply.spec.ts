import { test, expect } from "@playwright/test";
import { signIn, watchForErrors, uniqueName, SHOTS } from "./helpers";

test("a requester asks for a repository, an admin approves it, it is created and audited", async ({ browser }) => {
  const repo = uniqueName("e2e");
  const full = `crytera/${repo}`;

  // --- the requester ---
  const alice = await (await browser.newContext()).newPage();
  const aliceErrors = watchForErrors(alice);
  await signIn(alice, "alice", "requester");
  await alice.getByRole("link", { name: "New request" }).click();
  await expect(alice.getByRole("heading", { name: "Request a repository" })).toBeVisible();

  // The name is checked as it is typed, by the same parser the server uses.
  const name = alice.getByLabel("Repository name");
  await name.fill("Bad Name");
  await expect(alice.locator('[data-field="name"]')).toContainText("lowercase");
  await name.fill(repo);
  await expect(alice.locator('[data-field="name"]')).toBeEmpty();
  await expect(alice.getByTestId("name-preview")).toHaveText(full);

  await alice.getByLabel("Keep the last N images").fill("30");
  await alice.getByLabel("Expire untagged images after N days").fill("14");
  await alice.getByLabel("Team").fill("platform");
  await alice.getByLabel("Cost centre").fill("cc-42");

  // A missing justification is refused with a clear message, and nothing typed is lost.
  await alice.getByRole("button", { name: "Submit request" }).click();
  await expect(alice.locator('[data-field="justification"]')).toContainText("say why");
  await expect(alice.getByLabel("Team")).toHaveValue("platform");
  await expect(name).toHaveValue(repo);
  await alice.screenshot({ path: `${SHOTS}/new-request-validation.png`, fullPage: true });

  const payload = "Base images for <b>istio</b> <script>window.__pwned = 1</script>";
  await alice.getByLabel("Justification").fill(payload);
  await alice.getByRole("button", { name: "Submit request" }).click();
  await expect(alice).toHaveURL(/\/requests\/\d+$/);
  const requestUrl = alice.url();
  await expect(alice.getByTestId("request-status")).toContainText("pending");
  // Text people type is shown as text, never run.
  await expect(alice.getByTestId("justification")).toHaveText(payload);
  expect(await alice.evaluate(() => (window as any).__pwned)).toBeUndefined();
  // A requester sees why they cannot approve.
  await expect(alice.getByTestId("approve-blocked")).toContainText("only members of ecr-admins can decide");
  await expect(alice.getByRole("button", { name: "Approve" })).toHaveCount(0);

  // --- the admin ---
  const bob = await (await browser.newContext()).newPage();
  const bobErrors = watchForErrors(bob);
  await signIn(bob, "bob", "admin");
  await bob.getByRole("link", { name: "Queue" }).click();
  await expect(bob.getByRole("heading", { name: "Approval queue" })).toBeVisible();
  await bob.getByRole("link", { name: full }).click();
  await expect(bob).toHaveURL(requestUrl);

  // The plan shows the AWS calls and settings before anything happens.
  const plan = bob.getByTestId("plan");
  await expect(plan).toContainText("ecr:CreateRepository");
  await expect(plan).toContainText("ecr:PutLifecyclePolicy");
  await expect(plan).toContainText("IMMUTABLE");
  await expect(plan).toContainText('"countNumber": 30');
  await bob.screenshot({ path: `${SHOTS}/request-plan.png`, fullPage: true });

  // Approve, then watch the request reach `applied` with no further action:
  // the page follows the request by itself (it loads again when the status changes).
  await bob.getByLabel("Comment (optional)").fill("Looks right.");
  await bob.getByRole("button", { name: "Approve" }).click();
  await expect(bob.getByTestId("request-status")).toContainText("applied", { timeout: 30_000 });
  await expect(bob.getByTestId("decision")).toHaveCount(0);
  await expect(bob.getByText("Looks right.").first()).toBeVisible();
  await expect(bob.getByTestId("repository-uri")).toContainText(`.dkr.ecr.us-east-1.amazonaws.com/${full}`);
  // Submitted, approved, apply started, applied; besides them, who was notified (as deliveries happen).
  const timeline = bob.getByTestId("timeline").locator("li").filter({ hasNotText: "Notified" });
  await expect(timeline).toHaveCount(4);
  await bob.screenshot({ path: `${SHOTS}/request-applied.png`, fullPage: true });

  // The repository is listed, read from ECR, and found with the search.
  await bob.getByRole("link", { name: "Repositories" }).click();
  await expect(bob.getByTestId("repositories-count")).toBeVisible();
  await bob.getByLabel("Name contains").fill(full.toUpperCase());
  await bob.getByRole("button", { name: "Search" }).click();
  await expect(bob).toHaveURL(/q=/);
  await expect(bob.getByTestId("repositories-count")).toContainText("1–1 of 1 matching");
  const row = bob.getByTestId("repositories-table").locator("tr", { hasText: full });
  await expect(row).toContainText("IMMUTABLE");
  await expect(row).toContainText("on push");
  await bob.screenshot({ path: `${SHOTS}/repositories.png`, fullPage: true });

  // The audit page shows the events in order (newest first).
  await bob.getByRole("link", { name: "Audit" }).click();
  await bob.getByLabel("Repository").fill(full);
  await bob.getByRole("button", { name: "Filter" }).click();
  await expect(bob).toHaveURL(/repository=/);
  // The request's own steps (who was notified is in the trail too, as deliveries happen).
  const actions = bob.getByTestId("audit-table").locator("tbody tr:not([data-action^='notification_'])");
  await expect(actions).toHaveCount(4);
  const order = await actions.evaluateAll((rows) => rows.map((r) => r.getAttribute("data-action")));
  expect(order).toEqual(["apply_succeeded", "apply_started", "request_approved", "request_submitted"]);
  // The chain verifies, and the export links carry the filter.
  await bob.getByRole("button", { name: "Verify integrity" }).click();
  await expect(bob.getByTestId("verification")).toContainText("Intact");
  await expect(bob.getByRole("link", { name: "Export CSV" })).toHaveAttribute("href", /format=csv&repository=/);
  await bob.screenshot({ path: `${SHOTS}/audit.png`, fullPage: true });

  // On a phone-sized screen the request page still reads well.
  await bob.setViewportSize({ width: 390, height: 844 });
  await bob.goto(requestUrl);
  await expect(bob.getByTestId("request-status")).toContainText("applied");
  // Nothing is wider than the screen (long ARNs and policies wrap or scroll in their own box).
  expect(await bob.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
  await bob.screenshot({ path: `${SHOTS}/request-phone.png`, fullPage: true });

  expect(aliceErrors).toEqual([]);
  expect(bobErrors).toEqual([]);
});

test("signed-out visitors are asked to sign in, and unknown pages say so", async ({ page }) => {
  await page.goto("/");
  await expect(page.getByText("You need to sign in to see this page.")).toBeVisible();
  const resp = await page.goto("/no/such/page");
  expect(resp?.status()).toBe(404);
  await expect(page.getByRole("heading", { name: "Page not found" })).toBeVisible();
});

test("every form field has a label and the page can be used from the keyboard", async ({ page }) => {
  await signIn(page, "carol", "requester");
  await page.goto("/requests/new");
  await expect(page.getByRole("button", { name: "Submit request" })).toBeEnabled();
  const unlabelled = await page.evaluate(() =>
    Array.from(document.querySelectorAll("input:not([type=hidden]), select, textarea"))
      .filter((el) => !(el.id && document.querySelector(`label[for="${el.id}"]`)) && !el.closest("label"))
      .map((el) => el.outerHTML),
  );
  expect(unlabelled).toEqual([]);
  // Tab from the top reaches the skip link first, then the main navigation.
  await page.keyboard.press("Tab");
  await expect(page.getByRole("link", { name: "Skip to content" })).toBeFocused();
  await page.keyboard.press("Enter");
  await page.getByLabel("Repository name").focus();
  await page.keyboard.type("kbd-only");
  await expect(page.getByTestId("name-preview")).toHaveText("crytera/kbd-only");
});
