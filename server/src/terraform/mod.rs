//! Terraform interop, both ways: `export` writes the repositories under the
//! namespace as `.tf` in the module's shape (the way back out); `read` finds the
//! repositories in the module's HCL or a `terraform show -json` state (the way
//! in; the service's `import_terraform` decides what to do with each).
mod export;
pub mod read;

pub use export::{export, render, Export};

/// An import's report as plain text, a line per repository (for the command line).
pub fn report_text(report: &app::views::TerraformImportReport) -> String {
    let mut out = String::new();
    if report.dry_run {
        out.push_str("dry run: nothing was changed\n");
    }
    for r in &report.repositories {
        let requests: Vec<String> = r.request_ids.iter().map(|id| format!("#{id}")).collect();
        let requests = if requests.is_empty() { String::new() } else { format!(" [request {}]", requests.join(", ")) };
        out.push_str(&format!(
            "{:<40} {}{requests}\n    {} — {}\n",
            r.repository,
            r.outcome.label(report.dry_run),
            r.origin,
            r.detail
        ));
    }
    if report.repositories.is_empty() {
        out.push_str("the files describe no aws_ecr_repository\n");
    }
    for n in &report.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}
