import { test, expect } from "@playwright/test";
import { uniqueName, createRepository, moto, requesterAndAdmin, SHOTS } from "./helpers";

test("production access: the admin sees the policy diff, approves, and a hand edit shows up as drift", async ({ browser }) => {
  const name = uniqueName("prod");
  const full = `crytera/${name}`;
  const { alice, bob, errors } = await requesterAndAdmin(browser);

  // A repository to work with, made through the API (the first test covers the form).
  await createRepository(alice, bob, name, "base images");

  // The requester asks for production access from the form.
  await alice.goto(`/requests/access?repository=${full}`);
  await expect(alice.getByLabel("Repository")).toHaveValue(full);
  await alice.getByRole("button", { name: "Submit request" }).click();
  await expect(alice.locator('[data-field="justification"]')).toContainText("say why");
  await alice.getByLabel("Justification").fill("EKS in production runs these images");
  await alice.getByRole("button", { name: "Submit request" }).click();
  await expect(alice).toHaveURL(/\/requests\/\d+$/);
  const url = alice.url();

  // The admin sees the policy before and after, side by side.
  await bob.goto(url);
  await expect(bob.getByTestId("policy-before")).toContainText("No policy");
  await expect(bob.getByTestId("policy-after")).toContainText("arn:aws:iam::222222222222:root");
  await expect(bob.getByTestId("policy-after").locator(".added").first()).toBeVisible();
  await expect(bob.getByTestId("plan")).toContainText("ecr:SetRepositoryPolicy");
  await bob.screenshot({ path: `${SHOTS}/production-access-diff.png`, fullPage: true });
  await bob.getByRole("button", { name: "Approve" }).click();
  await expect(bob.getByTestId("request-status")).toContainText("applied", { timeout: 30_000 });

  // The inventory shows the repository as pullable by production.
  await bob.getByRole("link", { name: "Repositories" }).click();
  const row = bob.locator(`tr[data-repository="${full}"]`);
  await expect(row.getByTestId("production-access")).toContainText("pullable");
  await expect(row.getByTestId("drift")).toContainText("in sync");

  // Someone edits the policy by hand; a drift check shows it.
  moto(full, "remove-portal-statement");
  await bob.getByRole("button", { name: "Check drift now" }).click();
  await expect(row.getByTestId("drift")).toContainText("production can no longer pull");
  await expect(row.getByTestId("production-access")).toContainText("no access");
  await bob.screenshot({ path: `${SHOTS}/inventory-drift.png`, fullPage: true });
  expect(errors.flat()).toEqual([]);
});
