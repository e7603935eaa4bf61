//! The `weave-trace-server` binary: parse the command line, then serve, migrate or manage keys.
use std::time::Duration;

use clap::Parser;
use weave_trace_server::config::{Cli, Command, KeysCommand};
use weave_trace_server::{keys, routes, store, telemetry, AppState};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    telemetry::init_logs(cli.log_format);
    let pool = store::connect(&cli.database.pool()).await?;
    store::MIGRATOR.run(&pool).await?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => {
            eprintln!("migrations applied");
        }
        Command::Serve => {
            match keys::bootstrap(&pool, cli.serve.bootstrap_api_key.as_deref()).await? {
                keys::Bootstrap::Generated(secret) => {
                    // Printed once, on purpose, so a fresh install is usable; never logged.
                    println!("No API key existed, so an admin key was created. Store it now; it is not shown again:");
                    println!("{secret}");
                }
                keys::Bootstrap::Installed => {
                    tracing::info!("installed the bootstrap admin key from BOOTSTRAP_API_KEY");
                }
                keys::Bootstrap::KeysExist if cli.serve.bootstrap_api_key.as_deref().is_some_and(|k| !k.is_empty()) => {
                    tracing::warn!("BOOTSTRAP_API_KEY is ignored: keys exist already (manage them with `keys`)");
                }
                keys::Bootstrap::KeysExist => {}
            }
            let settings = cli.serve.settings();
            if cli.serve.rollup_refresh_secs > 0 {
                tokio::spawn(store::slots::refresh_forever(
                    pool.clone(),
                    Duration::from_secs(cli.serve.rollup_refresh_secs),
                ));
            }
            let state = AppState::new(pool, settings);
            if let Some(bind) = &cli.serve.metrics_bind {
                let listener = tokio::net::TcpListener::bind(bind).await?;
                tracing::info!(addr = %listener.local_addr()?, "metrics listening");
                let metrics = routes::service::metrics_router().with_state(state.clone());
                tokio::spawn(async move { axum::serve(listener, metrics).await });
            }
            let listener = tokio::net::TcpListener::bind(&cli.serve.bind).await?;
            tracing::info!(addr = %listener.local_addr()?, "listening");
            axum::serve(listener, routes::app(state)).with_graceful_shutdown(shutdown_signal()).await?;
            tracing::info!("shut down");
        }
        Command::Keys { command } => match command {
            KeysCommand::Create { entity, user, admin } => {
                let created = keys::create(&pool, &user, &entity, admin).await?;
                println!("created key {} for user {}", created.id, user);
                println!("{}", created.secret);
            }
            KeysCommand::List => {
                for key in store::keys::list(&pool).await? {
                    let scope = if key.is_admin { "admin".to_string() } else { key.entities.join(",") };
                    let state = match key.revoked_at {
                        Some(at) => format!("revoked {}", at.to_rfc3339()),
                        None => "active".to_string(),
                    };
                    println!("{}\t{}\t{}\t{}\t{}", key.id, key.user_id, scope, key.created_at.to_rfc3339(), state);
                }
            }
            KeysCommand::Revoke { id } => {
                if store::keys::revoke(&pool, &id).await? {
                    println!("revoked {id}");
                } else {
                    eprintln!("no active key {id}");
                    std::process::exit(1);
                }
            }
        },
    }
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM; axum then stops accepting and lets in-flight requests finish.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
