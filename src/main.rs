//! The `weave-trace-server` binary: parse the command line, then serve, migrate, load the demo
//! or manage keys. A failure to start is one line on stderr naming the cause and the fix, and
//! a non-zero exit.
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use weave_trace_server::config::{Cli, Command, KeysCommand, ServeConfig};
use weave_trace_server::{demo, keys, routes, serve, store, telemetry, AppState};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init_logs(cli.log_format);
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("weave-trace-server: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let command = cli.command.unwrap_or(Command::Serve(cli.serve));
    if let Command::Healthcheck { address } = &command {
        return healthcheck(address);
    }
    // Settings first: a typo fails before anything connects.
    let settings = match &command {
        Command::Serve(serve) => Some(serve.settings()?),
        _ => None,
    };
    let pool = store::open(&cli.database.pool()).await?;
    match command {
        Command::Migrate => eprintln!("migrations applied"),
        Command::Serve(config) => {
            serve_forever(pool, &cli.database.pool(), config, settings.expect("checked above")).await?
        }
        Command::Demo { project } => {
            let summary = demo::load(&pool, &project).await.map_err(|e| format!("loading the demo failed: {e}"))?;
            println!("{summary}");
        }
        Command::Keys { command } => manage_keys(&pool, command).await?,
        Command::Healthcheck { .. } => unreachable!("answered before connecting"),
    }
    Ok(())
}

async fn serve_forever(
    pool: sqlx::PgPool,
    database: &store::PoolConfig,
    config: ServeConfig,
    settings: weave_trace_server::Settings,
) -> Result<(), String> {
    let db_error = |e: sqlx::Error| format!("the database failed: {e}");
    let bootstrap = config.bootstrap_api_key.as_deref().filter(|k| !k.is_empty());
    match keys::bootstrap(&pool, bootstrap).await.map_err(db_error)? {
        keys::Bootstrap::Generated(secret) => {
            // Printed once, on purpose, so a fresh install is usable; never logged.
            println!("No API key existed, so an admin key was created. Store it now; it is not shown again:");
            println!("{secret}");
        }
        keys::Bootstrap::Installed => tracing::info!("installed the bootstrap admin key from BOOTSTRAP_API_KEY"),
        keys::Bootstrap::KeysExist if bootstrap.is_some() => {
            tracing::warn!("BOOTSTRAP_API_KEY is ignored: keys exist already (manage them with `keys`)")
        }
        keys::Bootstrap::KeysExist => {}
    }
    let listener = bind(&config.bind, "BIND").await?;
    let metrics_listener = match &config.metrics_bind {
        Some(address) => Some(bind(address, "METRICS_BIND").await?),
        None => None,
    };
    if config.rollup_refresh_secs > 0 {
        tokio::spawn(store::slots::refresh_forever(pool.clone(), Duration::from_secs(config.rollup_refresh_secs)));
    }
    let health = store::health_pool(database);
    let state = AppState::new(pool, settings).with_health_pool(health);
    let limits = config.connection_limits();
    if let Some(listener) = metrics_listener {
        tracing::info!(addr = %listener.local_addr().map_err(|e| e.to_string())?, "metrics listening");
        let metrics = routes::service::metrics_router().with_state(state.clone());
        tokio::spawn(serve::serve(listener, metrics, limits, std::future::pending()));
    }
    tracing::info!(addr = %listener.local_addr().map_err(|e| e.to_string())?, "listening");
    serve::serve(listener, routes::app(state), limits, shutdown_signal()).await;
    tracing::info!("shut down");
    Ok(())
}

/// `GET /health` on `address` over plain TCP: Ok when it answers 200.
fn healthcheck(address: &str) -> Result<(), String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).map_err(|e| format!("cannot reach {address}: {e}"))?;
    let timeout = Some(Duration::from_secs(3));
    stream.set_read_timeout(timeout).and_then(|()| stream.set_write_timeout(timeout)).map_err(|e| e.to_string())?;
    stream
        .write_all(format!("GET /health HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    match answer.split(' ').nth(1) {
        Some("200") => Ok(()),
        status => Err(format!("{address}/health answered {}", status.unwrap_or("nothing"))),
    }
}

/// Listen on `address` (from the setting `variable`), or say why not and what to change.
async fn bind(address: &str, variable: &str) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(address).await.map_err(|error| {
        let why = match error.kind() {
            std::io::ErrorKind::AddrInUse => "the address is in use (another server is running?)".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied (ports below 1024 need privileges)".to_string(),
            _ => error.to_string(),
        };
        format!("cannot listen on {address}: {why}; set {variable} to a free host:port")
    })
}

async fn manage_keys(pool: &sqlx::PgPool, command: KeysCommand) -> Result<(), String> {
    let db_error = |e: sqlx::Error| format!("the database failed: {e}");
    match command {
        KeysCommand::Create { entity, user, admin } => {
            let created = keys::create(pool, &user, &entity, admin).await.map_err(db_error)?;
            println!("created key {} for user {}", created.id, user);
            println!("{}", created.secret);
        }
        KeysCommand::List => {
            for key in store::keys::list(pool).await.map_err(db_error)? {
                let scope = if key.is_admin { "admin".to_string() } else { key.entities.join(",") };
                let state = match key.revoked_at {
                    Some(at) => format!("revoked {}", at.to_rfc3339()),
                    None => "active".to_string(),
                };
                println!("{}\t{}\t{}\t{}\t{}", key.id, key.user_id, scope, key.created_at.to_rfc3339(), state);
            }
        }
        KeysCommand::Revoke { id } => {
            if !store::keys::revoke(pool, &id).await.map_err(db_error)? {
                return Err(format!("no active key {id} (see `keys list`)"));
            }
            println!("revoked {id}");
        }
    }
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM; the server then stops accepting and lets in-flight requests finish.
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
