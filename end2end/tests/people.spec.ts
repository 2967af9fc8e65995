import { test, expect } from "@playwright/test";
import { signIn, watchForErrors, uniqueName, SHOTS } from "./helpers";

test("an admin cuts a person off from the people page, with JavaScript turned off", async ({ browser }) => {
  const leaver = uniqueName("leaver");
  const them = await (await browser.newContext()).newPage();
  const errors = watchForErrors(them);
  await signIn(them, leaver, "requester");
  const token = await them.request.post("/rpc/create_token", { data: { name: "ci", scope: "submit", days: 7 } });
  expect(token.status()).toBe(200);
  const secret = (await token.json()).secret as string;

  // The admin's browser runs no script at all: the page and its form are plain HTML.
  // (Signed in by the sign-in form's own POST: the header, streamed, needs script to show who is in.)
  const admin = await (await browser.newContext({ javaScriptEnabled: false })).newPage();
  const signedIn = await admin.request.post("/auth/local", { form: { username: "adam", role: "admin" } });
  expect(signedIn.ok()).toBeTruthy();
  await admin.goto("/users");
  await expect(admin.getByRole("heading", { name: "People" })).toBeVisible();
  const row = admin.getByRole("row").filter({ hasText: `local:${leaver}` });
  await expect(row).toContainText("requester");
  await expect(row.getByRole("cell").nth(3)).toHaveText("1");
  await expect(row.getByRole("cell").nth(4)).toHaveText("1");
  await row.getByText("Cut off…").click();
  await admin.screenshot({ path: `${SHOTS}/people.png`, fullPage: true });
  await row.getByRole("button", { name: `Cut off ${leaver}` }).click();
  await expect(admin.getByTestId("user-revoked")).toContainText(`local:${leaver}`);
  const after = admin.getByRole("row").filter({ hasText: `local:${leaver}` });
  await expect(after.getByRole("cell").nth(3)).toHaveText("0");
  await expect(after.getByRole("cell").nth(4)).toHaveText("0");

  // Their session and their token are over.
  await them.reload();
  await expect(them.getByRole("banner").getByRole("link", { name: "Sign in" })).toBeVisible();
  const withToken = await them.request.get("/api/v1/requests", { headers: { authorization: `Bearer ${secret}` } });
  expect(withToken.status()).toBe(401);
  expect(errors.filter((e) => !e.includes("401"))).toEqual([]);
});
