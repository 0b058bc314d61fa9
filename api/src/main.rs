//! `bourse-api`: the HTTP API. See `bourse-api --help`.

use std::process::ExitCode;

use anyhow::Context as _;
use api::cli::{ADMIN_PASSWORD, AdminAction, Cli, Command};
use clap::Parser as _;
use shared::config::Config;

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
            // Serve at once (`/healthz` up, `/readyz` and data routes 503)
            // while saying in the log what is still missing.
            tokio::spawn(api::wait_for_dependencies(state.clone()));
            tracing::info!(addr = %listener.local_addr()?, "API listening");
            api::serve(listener, state, shared::cli::shutdown_signal()).await?;
            tracing::info!("API stopped");
            Ok(())
        }
        Command::Migrate => {
            shared::startup::wait_for_connection(&config.database, config.startup_wait).await?;
            let conn = shared::db::connect_for_migrations(&config.database)
                .await
                .map_err(shared::db::MigrationError::Connect)?;
            let applied = shared::db::run_migrations(conn).await?;
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
                let password = if user.role == shared::accounts::Role::Admin {
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
        Command::Admin { action } => admin(action, config).await,
        Command::Openapi => {
            println!("{}", api::routes::openapi().to_pretty_json()?);
            Ok(())
        }
    }
}

async fn admin(action: AdminAction, config: Config) -> anyhow::Result<()> {
    let state = api::state(config.clone())?;
    let mut conn = state
        .db
        .get()
        .await
        .context("cannot connect to PostgreSQL")?;
    match action {
        AdminAction::Create { username, email } => {
            let password = match std::env::var(ADMIN_PASSWORD) {
                Ok(password) if !password.is_empty() => password,
                _ => {
                    eprintln!("password for {username} (one line on standard input):");
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            let input = shared::accounts::Registration::parse(&username, &email, &password)
                .map_err(|errors| {
                    let lines: Vec<String> =
                        errors.0.iter().map(|(f, m)| format!("{f}: {m}")).collect();
                    anyhow::anyhow!("{}", lines.join("; "))
                })?;
            let user =
                shared::accounts::create_admin(&mut conn, config.auth.bcrypt_cost, input).await?;
            println!("administrator {} created ({})", user.username, user.id);
        }
        AdminAction::Promote { username } => {
            let user = shared::accounts::promote(&mut conn, &username).await?;
            println!("{} is now an administrator", user.username);
        }
    }
    Ok(())
}
