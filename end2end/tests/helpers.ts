import { Browser, expect, Page } from "@playwright/test";
import { execFileSync } from "node:child_process";

export const SHOTS = process.env.SCREENSHOT_DIR ?? "../docs/screenshots";

/** Signs in through the local sign-in page, as a person would. */
export async function signIn(page: Page, username: string, role: "requester" | "admin" | "auditor") {
  await page.goto("/login");
  await page.getByLabel("User name").fill(username);
  await page.getByLabel(role[0].toUpperCase() + role.slice(1), { exact: true }).check();
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByTestId("current-user")).toContainText(username);
}

/** Fails the test on any console error, page error or failed request. */
export function watchForErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("response", (r) => { if (r.status() >= 500) errors.push(`${r.status()} ${r.url()}`); });
  return errors;
}

export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`;
}

/**
 * Holds the wasm bundle back for a while, as a slow phone or a busy CI machine
 * would: the server's HTML is on screen before its forms are interactive, and
 * nothing typed in that window may be lost.
 */
export async function slowWasm(page: Page, ms = 1500) {
  await page.route("**/*.wasm", async (route) => {
    await new Promise((r) => setTimeout(r, ms));
    await route.continue();
  });
}

const MOTO = process.env.MOTO_ENDPOINT ?? "http://127.0.0.1:5055";
const STAGING = process.env.STAGING_ACCOUNT ?? "333333333333";
const PYTHON = process.env.MOTO_PYTHON ?? "../.venv/bin/python";

/** Runs support/moto_policy.py against the test moto, as someone outside the portal would. */
export function moto(...args: string[]) {
  execFileSync(PYTHON, ["support/moto_policy.py", MOTO, STAGING, ...args]);
}

/** A repository made through the API by `requester` and approved by `admin` (the first test covers the form). */
export async function createRepository(requester: Page, admin: Page, name: string, justification: string) {
  const made = await requester.request.post("/api/v1/requests", {
    data: { name, team: "platform", cost_center: "cc-1", justification },
  });
  expect(made.status()).toBe(201);
  const id = (await made.json()).summary.id;
  expect((await admin.request.post(`/api/v1/requests/${id}/approve`, { data: {} })).status()).toBe(200);
  await expect.poll(async () => (await (await admin.request.get(`/api/v1/requests/${id}`)).json()).summary.status).toBe("applied");
}

/** Alice (a requester) and Bob (an admin), each signed in in a browser context of their own, watched for errors. */
export async function requesterAndAdmin(browser: Browser) {
  const alice = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  const errors = [alice, bob].map(watchForErrors);
  await signIn(alice, "alice", "requester");
  await signIn(bob, "bob", "admin");
  return { alice, bob, errors };
}
