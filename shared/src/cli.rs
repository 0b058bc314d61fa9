//! What every Bourse binary does before and around its real work: read the
//! configuration (one line per problem, exit code 2), set up logging, start
//! the async runtime, and stop on SIGTERM or Ctrl-C.

use std::{fmt::Display, future::Future, process::ExitCode};

use crate::config::Config;

/// Runs `main` with the configuration from the environment. Configuration
/// problems exit with code 2 before anything is connected; an error from
/// `main` is printed with its causes and exits with 1.
pub fn run<F, Fut, E>(default_log_filter: &str, main: F) -> ExitCode
where
    F: FnOnce(Config) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(errors) => {
            for problem in &errors.0 {
                eprintln!("configuration error: {problem}");
            }
            return ExitCode::from(2);
        }
    };
    // The crypto provider first: the trace exporter's HTTP client needs it.
    crate::tls::install_crypto_provider();
    crate::telemetry::init(config.log_format, default_log_filter, &config.telemetry);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(main(config));
    // Outside the runtime: the exporter's client blocks.
    crate::telemetry::shutdown();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM (how orchestrators stop a process) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
