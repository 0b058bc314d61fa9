//! `bourse-api`: the HTTP API. See `bourse-api --help`.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use secrecy::ExposeSecret as _;
use shared::config::Config;

#[derive(Parser)]
#[command(name = "bourse-api", version, about = "Bourse HTTP API")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API on HTTP_ADDR (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Create the demo accounts (admin and demo) if missing and print them.
    Seed {
        #[arg(long, env = "DEMO_ADMIN_PASSWORD", default_value = "bourse-admin")]
        admin_password: String,
        #[arg(long, env = "DEMO_USER_PASSWORD", default_value = "bourse-demo")]
        demo_password: String,
    },
    /// Print the OpenAPI document and exit.
    Openapi,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    shared::cli::run("info", |config| dispatch(cli, config))
}

async fn dispatch(cli: Cli, config: Config) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let addr = config.http.addr;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("HTTP_ADDR: cannot listen on {addr}"))?;
            let state = api::state(config)?;
            tracing::info!(addr = %listener.local_addr()?, "API listening");
            api::serve(listener, state, shared::cli::shutdown_signal()).await?;
            tracing::info!("API stopped");
            Ok(())
        }
        Command::Migrate => {
            let applied = shared::db::run_migrations(config.database.url.expose_secret()).await?;
            if applied.is_empty() {
                println!("migrations: none pending");
            } else {
                println!("migrations applied: {}", applied.join(", "));
            }
            Ok(())
        }
        Command::Seed {
            admin_password,
            demo_password,
        } => {
            let state = api::state(config.clone())?;
            let mut conn = state
                .db
                .get()
                .await
                .context("cannot connect to PostgreSQL")?;
            let users = shared::seed::seed_demo_users(
                &mut conn,
                config.auth.bcrypt_cost,
                &admin_password,
                &demo_password,
            )
            .await?;
            for user in users {
                let password = if user.role == "admin" {
                    &admin_password
                } else {
                    &demo_password
                };
                let note = if user.created {
                    "created"
                } else {
                    "already there; password unchanged"
                };
                println!(
                    "{:<6} login {} / {}  password {}  ({note})",
                    user.role, user.username, user.email, password
                );
            }
            Ok(())
        }
        Command::Openapi => {
            println!("{}", api::routes::openapi().to_pretty_json()?);
            Ok(())
        }
    }
}
