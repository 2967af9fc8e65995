#![recursion_limit = "256"]
//! `ecr-portal [--config PATH]` runs the portal;
//! `ecr-portal check-config [--config PATH]` validates the configuration and exits.
use anyhow::{bail, Context};
use server::config::Config;
use server::startup::Application;
use std::path::PathBuf;

fn usage() -> &'static str {
    "usage: ecr-portal [serve|check-config] [--config PATH]\n\
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
        .init();

    let mut args = std::env::args().skip(1);
    let mut command = "serve".to_string();
    let mut config_path: Option<PathBuf> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" => config_path = Some(args.next().context("--config needs a path")?.into()),
            "serve" | "check-config" => command = a,
            "-h" | "--help" => {
                println!("{}", usage());
                return Ok(());
            }
            other => bail!("unknown argument `{other}`\n{}", usage()),
        }
    }
    let config = Config::load(config_path.as_deref())?;
    if command == "check-config" {
        println!("configuration is valid");
        return Ok(());
    }
    let app = Application::build(config).await?;
    println!("ecr-portal is ready at http://{}", app.addr());
    app.run_until_stopped().await
}
