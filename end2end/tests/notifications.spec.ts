import { test, expect } from "@playwright/test";
import { signIn, watchForErrors, SHOTS } from "./helpers";

const RECEIVER = process.env.RECEIVER;

test("the admin's notifications page: the outbox, and a test notification that arrives", async ({ page, request }) => {
  test.skip(!RECEIVER, "set RECEIVER (.ci/test starts a receiver and points the portal's Slack channel at it)");
  const errors = watchForErrors(page);
  await signIn(page, "adam", "admin");
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Notifications" }).click();
  await expect(page.getByRole("heading", { name: "Notifications" })).toBeVisible();
  await expect(page.locator(".channel-list").getByText("slack", { exact: true })).toBeVisible();
  await page.getByRole("button", { name: "Send a test notification to slack" }).click();
  await expect(page.getByTestId("test-sent")).toContainText("on its way to slack");
  // The receiver gets it, as a Slack-compatible message.
  await expect
    .poll(async () => {
      const got = (await (await request.get(`${RECEIVER}/received`)).json()) as { path: string; body: string }[];
      return got.filter((r) => r.path === "/slack").map((r) => JSON.parse(r.body).text as string).find((t) => t.includes("Test notification")) ?? "";
    })
    .toContain("sent by local:adam");
  // And the outbox shows it delivered.
  await expect
    .poll(async () => {
      await page.reload();
      return await page.getByTestId("outbox").getByRole("row").filter({ hasText: "test" }).first().innerText();
    })
    .toContain("delivered");
  await page.screenshot({ path: `${SHOTS}/notifications.png`, fullPage: true });
  expect(errors).toEqual([]);
});
