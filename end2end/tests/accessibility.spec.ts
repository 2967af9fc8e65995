import { test, expect, Browser, Page } from "@playwright/test";
import AxeBuilder from "@axe-core/playwright";
import { uniqueName, createRepository, requesterAndAdmin, signIn } from "./helpers";

/** WCAG 2.1 A and AA, as axe-core checks them. */
const WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];

/** Axe's serious and critical findings on the page as it is now, in words. */
async function serious(page: Page): Promise<string[]> {
  const results = await new AxeBuilder({ page }).withTags(WCAG).analyze();
  return results.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${page.url()} ${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(" | ")}`);
}

async function as(browser: Browser, username: string, role: "requester" | "admin" | "auditor"): Promise<Page> {
  const page = await (await browser.newContext()).newPage();
  await signIn(page, username, role);
  return page;
}

test("every page, signed in as each role, has no serious or critical accessibility violation (axe, WCAG 2.1 A/AA)", async ({ browser }) => {
  test.setTimeout(240_000);
  // The audit itself can fail: a page with an image without text and an empty button is caught.
  const probe = await (await browser.newContext()).newPage();
  await probe.setContent('<html lang="en"><head><title>probe</title></head><body><main><img src="data:,"><button></button></main></body></html>');
  expect((await serious(probe)).length, "axe reports the probe's violations").toBeGreaterThan(0);
  const name = uniqueName("a11y");
  const full = `crytera/${name}`;
  const { alice, bob } = await requesterAndAdmin(browser);
  await createRepository(alice, bob, name, "accessibility audit");
  // A request with a policy diff to look at.
  const asked = await alice.request.post("/api/v1/requests", {
    data: { kind: "grant_production", repository: full, justification: "EKS pulls it" },
  });
  expect(asked.status()).toBe(201);
  const id = (await asked.json()).summary.id;
  const pages = [
    "/", "/requests/new", "/requests/access", `/requests/${id}`, "/queue", "/repositories",
    `/repositories/settings?name=${full}`, `/repositories/images?name=${full}`, "/terraform/import",
    "/audit", "/tokens", "/users", "/notifications",
  ];
  const found: string[] = [];
  const anonymous = await (await browser.newContext()).newPage();
  await anonymous.goto("/login");
  await expect(anonymous.getByRole("button", { name: "Sign in" })).toBeVisible();
  found.push(...(await serious(anonymous)));
  for (const [who, role] of [["alice", "requester"], ["bob", "admin"], ["audrey", "auditor"]] as const) {
    const page = who === "alice" ? alice : who === "bob" ? bob : await as(browser, who, role);
    for (const path of pages) {
      await page.goto(path);
      await expect(page.locator("main")).not.toContainText("Loading…");
      found.push(...(await serious(page)).map((f) => `${role}: ${f}`));
    }
  }
  expect(found).toEqual([]);
});

test("the policy diff stays readable at 200 % zoom and on a phone: nothing cut off, nothing to scroll sideways", async ({ browser }) => {
  const name = uniqueName("zoom");
  const full = `crytera/${name}`;
  const { alice, bob } = await requesterAndAdmin(browser);
  await createRepository(alice, bob, name, "zoom");
  const asked = await alice.request.post("/api/v1/requests", {
    data: { kind: "grant_production", repository: full, justification: "EKS pulls it" },
  });
  const id = (await asked.json()).summary.id;
  // 200 % zoom of a 1280-pixel-wide window is 640 CSS pixels; a phone is 390.
  for (const width of [640, 390]) {
    await bob.setViewportSize({ width, height: 900 });
    await bob.goto(`/requests/${id}`);
    const after = bob.getByTestId("policy-after");
    await expect(after).toContainText("arn:aws:iam::222222222222:root");
    const box = await after.boundingBox();
    expect(box, "the after column is on the page").not.toBeNull();
    expect(box!.x + box!.width, `the after column fits in ${width} pixels`).toBeLessThanOrEqual(width);
    const sideways = await bob.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(sideways, `no sideways scrolling at ${width} pixels`).toBeLessThanOrEqual(0);
  }
});
