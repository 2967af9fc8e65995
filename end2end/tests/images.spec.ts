import { test, expect } from "@playwright/test";
import { uniqueName, createRepository, moto, requesterAndAdmin, SHOTS } from "./helpers";

test("images and promotion: open a repository's images, promote one, approve, see the release listed", async ({ browser }) => {
  const name = uniqueName("release");
  const full = `crytera/${name}`;
  const { alice, bob, errors } = await requesterAndAdmin(browser);
  await createRepository(alice, bob, name, "service images");
  moto(full, "push", "build-1", "build-2");

  await alice.goto(`/repositories?q=${name}`);
  await alice.locator(`tr[data-repository="${full}"]`).getByTestId("images-link").click();
  await expect(alice.getByTestId("images-name")).toHaveText(full);
  await expect(alice.getByTestId("images-count")).toContainText("1–2 of 2 images");
  await expect(alice.getByTestId("not-pullable")).toBeVisible();
  const row = alice.getByTestId("images").getByRole("row").filter({ hasText: "build-1" });
  await row.getByText("Promote…").click();
  await row.getByLabel("Release tag for build-1").fill("v1.0.0");
  await row.getByLabel("Why is it ready?").fill("passed the staging suite");
  await row.getByRole("button", { name: "Request the promotion" }).click();
  await expect(alice).toHaveURL(/\/requests\/\d+$/);

  await bob.goto(alice.url());
  await expect(bob.getByTestId("promote-tag")).toHaveText("v1.0.0");
  await expect(bob.getByTestId("plan")).toContainText("ecr:PutImage");
  await expect(bob.getByTestId("plan-warning")).toContainText("Production cannot pull");
  await bob.getByRole("button", { name: "Approve" }).click();
  await expect(bob.getByTestId("request-status")).toContainText("applied", { timeout: 30_000 });

  await alice.goto(`/repositories/images?name=${full}`);
  const release = alice.getByTestId("releases").locator('tr[data-release="v1.0.0"]');
  await expect(release).toContainText("local:bob");
  await expect(release).toContainText(`${full}@sha256:`);
  await expect(alice.getByTestId("images").getByRole("row").filter({ hasText: "build-1" })).toContainText("v1.0.0");
  await alice.screenshot({ path: `${SHOTS}/images-releases.png`, fullPage: true });
  expect(errors.flat()).toEqual([]);
});
