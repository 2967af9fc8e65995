import { test, expect } from "@playwright/test";
import { uniqueName, moto, requesterAndAdmin, SHOTS } from "./helpers";

/** The Terraform module the portal replaces, with this run's names. */
function moduleText(u: string): string {
  return `locals {
  repo_acc1 = "crytera"
  ecr_repo = {
    "repo01" = { acc_name = local.repo_acc1, repo_name = "${u}istio" }
    "repo02" = { acc_name = local.repo_acc1, repo_name = "${u}fargate" }
  }
}

resource "aws_ecr_repository" "ecr_repo" {
  for_each             = local.ecr_repo
  name                 = "\${each.value.acc_name}/\${each.value.repo_name}"
  image_tag_mutability = "MUTABLE"
  image_scanning_configuration {
    scan_on_push = true
  }
  tags = { team = "platform" }
}
`;
}

test("an admin imports the Terraform module: a dry run's report, then the import, adopting one repository and requesting the other", async ({ browser }) => {
  const u = uniqueName("tf");
  const { alice, bob, errors } = await requesterAndAdmin(browser);
  // Terraform made the first repository; the second is only in the file.
  moto(`crytera/${u}istio`, "terraform-module");

  await bob.goto("/repositories");
  await bob.getByTestId("terraform-import").click();
  await expect(bob).toHaveURL(/\/terraform\/import$/);
  await bob.getByLabel("The file's text").fill(moduleText(u));
  await bob.getByLabel("Cost center").fill("cc-9");
  // The dry run is the default: a report, nothing changed.
  await bob.getByRole("button", { name: "Import" }).click();
  const report = bob.getByTestId("import-report");
  await expect(report).toContainText("dry run (nothing was changed)");
  await expect(report.getByRole("row", { name: new RegExp(`${u}istio`) })).toContainText("would be adopted");
  await expect(report.getByRole("row", { name: new RegExp(`${u}fargate`) })).toContainText("would get a create request");
  await expect(report).toContainText('main.tf:4 aws_ecr_repository.ecr_repo["repo01"]');
  await bob.screenshot({ path: `${SHOTS}/terraform-import-dry-run.png`, fullPage: true });

  // Back, without the dry run: imported. Production could pull the adopted one, so a grant request asks for it.
  await bob.goBack();
  await bob.getByLabel("Dry run: show the report, change nothing").uncheck();
  await bob.getByRole("button", { name: "Import" }).click();
  await expect(report).toContainText("Import done");
  const adopted = report.getByRole("row", { name: new RegExp(`${u}istio`) });
  await expect(adopted).toContainText("adopted");
  await expect(adopted).toContainText("a grant request asks to approve that");
  await report.getByRole("row", { name: new RegExp(`${u}fargate`) }).getByRole("link").click();
  await expect(bob).toHaveURL(/\/requests\/\d+$/);
  await expect(bob.getByTestId("request-status")).toContainText("pending");
  // The requests wait for another approver; the repository is in the portal now.
  await alice.goto(`/repositories?q=${u}istio`);
  const row = alice.locator(`tr[data-repository="crytera/${u}istio"]`);
  await expect(row).toBeVisible();
  await expect(row).not.toContainText("not in the portal");
  expect(errors.flat()).toEqual([]);
});
