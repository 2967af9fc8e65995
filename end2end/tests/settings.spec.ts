import { test, expect } from "@playwright/test";
import { uniqueName, createRepository, moto, requesterAndAdmin, SHOTS } from "./helpers";

test("a repository's settings change: before → after, the lifecycle preview, approval, applied; then its deletion with the warning", async ({ browser }) => {
  const name = uniqueName("settings");
  const full = `crytera/${name}`;
  const { alice, bob, errors } = await requesterAndAdmin(browser);
  await createRepository(alice, bob, name, "web images");
  // CI pushed three dev builds and a release.
  moto(full, "push", "v1.0.0", "dev-1", "dev-2", "dev-3");

  // From the repositories page to the settings page, as a person would.
  await alice.goto(`/repositories?q=${name}`);
  await alice.locator(`tr[data-repository="${full}"]`).getByTestId("settings-link").click();
  await expect(alice.getByTestId("settings-name")).toHaveText(full);
  await alice.getByLabel("Image tags").selectOption("IMMUTABLE_WITH_EXCLUSION");
  await alice.getByLabel("Exclusions").fill("latest, dev-*");
  await alice.getByLabel("Scan on push").selectOption("false");
  await alice.getByLabel("Lifecycle policy (ECR JSON)").fill(JSON.stringify({
    rules: [{ rulePriority: 1, description: "dev builds", selection: { tagStatus: "tagged", tagPatternList: ["dev-*"], countType: "imageCountMoreThan", countNumber: 1 }, action: { type: "expire" } }],
  }, null, 2));
  await alice.getByLabel("Other tags").fill("service=web\n");
  // The form's own preview (a plain GET back to the page): what the typed lifecycle would expire, and the form kept.
  await alice.getByRole("button", { name: "Preview what it would expire" }).click();
  await expect(alice.getByTestId("form-preview")).toContainText("4 image(s) now: 2 would expire");
  await expect(alice.getByLabel("Exclusions")).toHaveValue("latest, dev-*");
  await expect(alice.getByLabel("Scan on push")).toHaveValue("false");
  await alice.getByLabel("Justification").first().fill("CI moves latest; keep one dev build");
  await alice.getByRole("button", { name: "Request the change" }).click();
  await expect(alice).toHaveURL(/\/requests\/\d+$/);
  const url = alice.url();

  // The approver sees each setting before → after and what the lifecycle would expire.
  await bob.goto(url);
  const changes = bob.getByTestId("setting-changes");
  await expect(changes.locator('tr[data-setting="Image tags"]')).toContainText("IMMUTABLE_WITH_EXCLUSION except dev-*, latest");
  await expect(changes.locator('tr[data-setting="Scan on push"]')).toHaveAttribute("data-changed", "true");
  await expect(changes.locator('tr[data-setting="Encryption"]')).toContainText("unchanged");
  const preview = bob.getByTestId("lifecycle-preview");
  await expect(bob.getByTestId("lifecycle-preview-summary")).toContainText("4 image(s) now: 2 would expire");
  await expect(preview.getByRole("row").nth(1)).toContainText("dev-2");
  await expect(preview.getByRole("row").nth(2)).toContainText("dev-1");
  await bob.screenshot({ path: `${SHOTS}/settings-change-plan.png`, fullPage: true });
  await bob.getByRole("button", { name: "Approve" }).click();
  await expect(bob.getByTestId("request-status")).toContainText("applied", { timeout: 30_000 });

  // The settings page shows the new approved settings; deleting warns (images go with it).
  await alice.goto(`/repositories/settings?name=${full}`);
  await expect(alice.getByTestId("approved-settings")).toContainText("IMMUTABLE_WITH_EXCLUSION except dev-*, latest");
  await alice.getByText("Delete…").click();
  await expect(alice.getByTestId("delete-form")).toBeVisible();
  await expect(alice.getByText("Its 4 image(s) are deleted with it.")).toBeVisible();
  await alice.getByLabel("Why can it go?").fill("replaced by crytera/web2");
  await alice.getByRole("button", { name: "Request deletion" }).click();
  await expect(alice).toHaveURL(/\/requests\/\d+$/);
  await bob.goto(alice.url());
  await expect(bob.getByTestId("plan")).toContainText("its 4 image(s) go with it");
  await expect(bob.getByTestId("plan")).toContainText("ecr:DeleteRepository");
  await bob.screenshot({ path: `${SHOTS}/delete-plan.png`, fullPage: true });
  await bob.getByRole("button", { name: "Approve" }).click();
  await expect(bob.getByTestId("request-status")).toContainText("applied", { timeout: 30_000 });
  expect(errors.flat()).toEqual([]);
});
