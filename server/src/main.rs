#![recursion_limit = "256"]
//! The `ecr-portal` command:
//! - `ecr-portal [serve] [--config PATH]` runs the portal;
//! - `ecr-portal check-config` validates the configuration and exits;
//! - `ecr-portal audit verify` checks the audit chain and names the first broken event;
//! - `ecr-portal audit export [--format csv|ndjson] [--actor A] [--action A] [--repository R] [--from D] [--to D]`
//!   writes the audit trail to standard output;
//! - `ecr-portal backup PATH` writes a consistent copy of the live database while the portal keeps serving.
use anyhow::{bail, Context};
use futures::StreamExt;
use server::config::Config;
use server::db::Db;
use server::startup::Application;
use std::io::Write;
use std::path::PathBuf;

fn usage() -> &'static str {
    "usage: ecr-portal [serve | check-config | audit verify | audit export [--format csv|ndjson] [filters] | backup PATH] [--config PATH]\n\
     filters for export: --actor A --action A --repository R --from YYYY-MM-DD --to YYYY-MM-DD\n\
     Every config key can be overridden with ECR_PORTAL_SECTION__KEY (see server/config/ecr-portal.example.toml)."
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,aws_config=warn,aws_smithy_runtime=warn".into()),
        )
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();

    let mut words: Vec<String> = Vec::new();
    let mut options: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "-h" || a == "--help" {
            println!("{}", usage());
            return Ok(());
        }
        if let Some(key) = a.strip_prefix("--") {
            let value = args.next().with_context(|| format!("--{key} needs a value\n{}", usage()))?;
            options.insert(key.to_string(), value);
        } else {
            words.push(a);
        }
    }
    let config_path = options.remove("config").map(PathBuf::from);
    let config = Config::load(config_path.as_deref())?;
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match words.as_slice() {
        [] | ["serve"] => {
            let app = Application::build(config).await?;
            println!("ecr-portal is ready at http://{}", app.addr());
            app.run_until_stopped().await
        }
        ["check-config"] => {
            println!("configuration is valid");
            Ok(())
        }
        ["audit", "verify"] => {
            let db = Db::connect(&config.database_path).await?;
            let v = server::audit::verify(&db.pool).await?;
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
        ["audit", "export"] => {
            let format = server::export::Format::parse(options.remove("format").as_deref().unwrap_or("csv"))
                .context("--format must be csv or ndjson")?;
            let query = app::views::AuditQuery {
                actor: options.remove("actor"),
                action: options.remove("action"),
                repository: options.remove("repository"),
                from: options.remove("from"),
                to: options.remove("to"),
                ..Default::default()
            };
            if let Some(k) = options.keys().next() {
                bail!("unknown option --{k}\n{}", usage());
            }
            let filter = server::db::filter_from_query(&query, config.namespace.as_str())
                .map_err(|e| anyhow::anyhow!("--{}: {}", e.field, e.message))?;
            let db = Db::connect(&config.database_path).await?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let mut chunks = std::pin::pin!(server::export::stream(db.pool.clone(), filter, format));
            while let Some(chunk) = chunks.next().await {
                out.write_all(&chunk?)?;
            }
            out.flush()?;
            Ok(())
        }
        ["backup", path] => {
            let db = Db::connect(&config.database_path).await?;
            let copy = server::db::backup(&db, std::path::Path::new(path)).await?;
            println!(
                "backup written to {path}: {} audit events, chain {}",
                copy.events,
                if copy.intact() { "intact" } else { "BROKEN" }
            );
            Ok(())
        }
        _ => bail!("unknown command `{}`\n{}", words.join(" "), usage()),
    }
}
