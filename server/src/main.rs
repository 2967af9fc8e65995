#![recursion_limit = "256"]
//! The `ecr-portal` command:
//! (`--help` on each command says more; `--version` prints the version.)
//! - `ecr-portal [serve] [--config PATH]` runs the portal;
//! - `ecr-portal check-config` validates the configuration and exits;
//! - `ecr-portal audit verify` checks the audit chain and names the first broken event;
//! - `ecr-portal audit export [--format csv|ndjson] [--actor A] [--action A] [--repository R] [--from D] [--to D]`
//!   writes the audit trail to standard output;
//! - `ecr-portal backup PATH` writes a consistent copy of the live database while the portal keeps serving;
//! - `ecr-portal terraform export --out DIR` writes the repositories as Terraform;
//! - `ecr-portal terraform import FILE… [--dry-run]` takes over the repositories a Terraform file describes.
use anyhow::Context;
use clap::{Parser, Subcommand};
use futures::StreamExt;
use server::config::Config;
use server::db::Db;
use server::startup::Application;
use std::io::Write;
use std::path::PathBuf;

/// ecr-portal: self-service Amazon ECR repositories, reviewed and audited.
///
/// Every configuration key can be overridden with ECR_PORTAL_SECTION__KEY
/// (see server/config/ecr-portal.example.toml).
#[derive(Parser)]
#[command(name = "ecr-portal", version, about)]
struct Cli {
    /// The configuration file (TOML); without it, the embedded defaults and the environment.
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the portal (the default).
    Serve,
    /// Validate the configuration and exit.
    CheckConfig,
    /// Read the audit trail (opens the database read-only; safe beside a running portal).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Write a consistent copy of the database while the portal keeps serving, and verify it.
    Backup {
        /// Where to write the copy (must not exist yet).
        path: PathBuf,
    },
    /// Terraform interop.
    #[command(subcommand)]
    Terraform(TerraformCommand),
    /// Print the JSON API's OpenAPI 3.1 document (the one served at /api/v1/openapi.json),
    /// e.g. to generate a client.
    Openapi,
}

#[derive(Subcommand)]
enum TerraformCommand {
    /// Write the repositories under the namespace, as they are live in ECR, as Terraform in the
    /// module's shape with import blocks (DIR/main.tf; no provider block).
    Export {
        /// The folder to write main.tf into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Take over the repositories a Terraform file describes (the module's .tf, or the JSON of
    /// `terraform show -json`): those in ECR are adopted as they are, the others get create
    /// requests. Nothing is changed unless every file reads cleanly. Run it while the portal is
    /// stopped (it takes the database's lock), or use the import page / the API instead.
    Import {
        /// The files: .tf, or .json from `terraform show -json`.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Report what would happen; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// The team tag for repositories to be created whose file gives none.
        #[arg(long)]
        team: Option<String>,
        /// The cost-center tag, likewise.
        #[arg(long)]
        cost_center: Option<String>,
        /// The justification of the requests filed (default: one naming the file and key).
        #[arg(long)]
        justification: Option<String>,
        /// Who the audit trail and the requests name (default: cli:$USER). The requests it files
        /// are decided by others, as any request is.
        #[arg(long = "as", value_name = "ID")]
        actor: Option<String>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain; names the first broken event and exits 1 if there is one.
    Verify,
    /// Write the audit trail (with each event's hash) to standard output.
    Export {
        /// csv or ndjson.
        #[arg(long, default_value = "csv")]
        format: String,
        #[arg(long)]
        actor: Option<String>,
        /// An action name, e.g. request_approved.
        #[arg(long)]
        action: Option<String>,
        /// A repository, with or without the namespace.
        #[arg(long)]
        repository: Option<String>,
        /// First day included (YYYY-MM-DD, UTC).
        #[arg(long)]
        from: Option<String>,
        /// Last day included (YYYY-MM-DD, UTC).
        #[arg(long)]
        to: Option<String>,
    },
}

/// The log on standard error: `log.format` text (coloured only on a terminal) or JSON lines; each
/// line of a request carries its id (the `request` span). `RUST_LOG` filters.
fn logging(format: server::config::LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn,aws_config=warn,aws_smithy_runtime=warn".into());
    let fmt = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_writer(std::io::stderr);
    match format {
        server::config::LogFormat::Json => fmt.json().with_current_span(true).with_span_list(false).init(),
        server::config::LogFormat::Text => fmt.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Openapi) = cli.command {
        // Needs no configuration: the document is the code's.
        println!("{}", serde_json::to_string_pretty(&server::http::api::openapi())?);
        return Ok(());
    }
    let config = Config::load(cli.config.as_deref())?;
    logging(config.raw.log.format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(config).await?;
            println!("ecr-portal is ready at http://{}", app.addr());
            app.run_until_stopped().await
        }
        Command::Openapi => Ok(()),
        Command::CheckConfig => {
            println!("configuration is valid");
            Ok(())
        }
        Command::Audit(AuditCommand::Verify) => {
            let pool = Db::open_read_only(&config.database_path).await?;
            let key = server::audit::ChainKey::new(&server::secret::PortalKey::load(&config.audit_key_path)?);
            let mut v = server::db::verify_chain(&pool, &key).await?;
            if let Some(file) = &config.audit_head_file {
                let heads = server::service::read_heads(file)?;
                v = server::db::check_published_heads(&pool, v, &heads).await?;
                println!("checked against {} published head(s) in {}", heads.len(), file.display());
            }
            if v.intact() {
                println!("audit trail intact: {} events, head {}", v.events, v.head);
                Ok(())
            } else {
                println!(
                    "audit trail BROKEN at event {}: {} ({} events verified before it)",
                    v.broken_at.unwrap_or(0),
                    v.reason.unwrap_or_default(),
                    v.events
                );
                std::process::exit(1);
            }
        }
        Command::Audit(AuditCommand::Export { format, actor, action, repository, from, to }) => {
            let format = server::export::Format::parse(&format).context("--format must be csv or ndjson")?;
            let query = app::views::AuditQuery { actor, action, repository, from, to, ..Default::default() };
            let filter = server::db::filter_from_query(&query, config.namespace.as_str())
                .map_err(|e| anyhow::anyhow!("--{}: {}", e.field, e.message))?;
            let pool = Db::open_read_only(&config.database_path).await?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let mut chunks = std::pin::pin!(server::export::stream(pool, filter, format));
            while let Some(chunk) = chunks.next().await {
                out.write_all(&chunk?)?;
            }
            out.flush()?;
            Ok(())
        }
        Command::Terraform(TerraformCommand::Export { out }) => {
            let registry = server::aws::EcrRegistry::new(&config).await;
            let done = server::terraform::export(&registry, &config.namespace).await?;
            std::fs::create_dir_all(&out)?;
            let file = out.join("main.tf");
            std::fs::write(&file, &done.main_tf)?;
            println!("wrote {} ({} repositories)", file.display(), done.exported.len());
            for why in &done.skipped {
                println!("skipped: {why}");
            }
            Ok(())
        }
        Command::Terraform(TerraformCommand::Import { files, dry_run, team, cost_center, justification, actor }) => {
            let mut input =
                app::views::TerraformImportInput { dry_run, team, cost_center, justification, files: vec![] };
            for path in &files {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                input.files.push(app::views::TerraformFile { name: path.display().to_string(), text });
            }
            if !config.database_path.exists() {
                anyhow::bail!(
                    "there is no database at {} (config key `database.path`); the import goes into the portal's \
                     own database, so point at it (or start the portal once to create it)",
                    config.database_path.display()
                );
            }
            let (_lock, service) = Application::service_only(&config).await.context(
                "the import writes to the portal's database; while the portal runs, use its import page \
                 (/terraform/import) or POST /api/v1/terraform/import instead",
            )?;
            let user = std::env::var("USER").unwrap_or_else(|_| "operator".into());
            let id = actor.unwrap_or_else(|| format!("cli:{user}"));
            let by =
                app::domain::principal::Principal::new(id.clone(), id, app::domain::principal::Role::Admin, vec![]);
            match service.import_terraform(&by, input).await {
                Ok(report) => {
                    print!("{}", server::terraform::report_text(&report));
                    Ok(())
                }
                Err(server::service::Error::Invalid(errors)) => {
                    eprintln!("nothing was imported; fix these and run it again:");
                    for e in errors {
                        eprintln!("  {}", e.message);
                    }
                    std::process::exit(2);
                }
                Err(e) => Err(anyhow::anyhow!("nothing was imported: {e}")),
            }
        }
        Command::Backup { path } => {
            let pool = Db::open_read_only(&config.database_path).await?;
            let key = server::audit::ChainKey::new(&server::secret::PortalKey::load(&config.audit_key_path)?);
            let copy = server::db::backup(&pool, &path, &key).await?;
            println!(
                "backup written to {}: {} audit events, chain {}",
                path.display(),
                copy.events,
                if copy.intact() { "intact" } else { "BROKEN" }
            );
            Ok(())
        }
    }
}
