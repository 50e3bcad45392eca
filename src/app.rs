//! Process lifecycle: build the runtime, bind listeners, start discovery and maintenance, reload
//! on SIGHUP (or the admin API), drain on SIGTERM/SIGINT.

use crate::config::{Config, ConfigError};
use crate::discovery::DiscoveryManager;
use crate::metrics::metrics;
use crate::proxy::server::{accept_loop, Drain, ListenerCtx};
use crate::runtime::{BuildError, Runtime, Shared};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("listener TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tunnel(#[from] crate::tunnel::hub::HubError),
    #[error("signal handler: {0}")]
    Signal(std::io::Error),
}

/// Everything the admin API and signal handlers act on.
pub struct App {
    pub shared: Arc<Shared>,
    pub discovery: DiscoveryManager,
    config_path: Option<PathBuf>,
    reload_lock: tokio::sync::Mutex<()>,
    started: Instant,
    bound: watch::Sender<Option<Bound>>,
    stop: tokio::sync::Notify,
}

/// The addresses actually bound (port 0 in the config becomes a real port).
#[derive(Debug, Clone)]
pub struct Bound {
    pub proxy: Vec<std::net::SocketAddr>,
    pub admin: Option<std::net::SocketAddr>,
}

impl App {
    pub fn new(config: Config, config_path: Option<PathBuf>) -> Result<Arc<App>, AppError> {
        let rt = Runtime::build(Arc::new(config), None)?;
        Ok(Arc::new(App {
            shared: Arc::new(Shared::new(rt)),
            discovery: DiscoveryManager::default(),
            config_path,
            reload_lock: tokio::sync::Mutex::new(()),
            started: Instant::now(),
            bound: watch::channel(None).0,
            stop: tokio::sync::Notify::new(),
        }))
    }

    /// Waits until `run` has bound its listeners and returns their addresses.
    pub async fn bound(&self) -> Bound {
        let mut rx = self.bound.subscribe();
        loop {
            if let Some(b) = rx.borrow_and_update().clone() {
                return b;
            }
            if rx.changed().await.is_err() {
                return Bound {
                    proxy: Vec::new(),
                    admin: None,
                };
            }
        }
    }

    /// Asks `run` to drain and return, as SIGTERM does.
    pub fn stop(&self) {
        self.stop.notify_one();
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Re-reads the config file and swaps it in; on any error the old config keeps serving.
    pub async fn reload(&self) -> Result<(), AppError> {
        let _one_at_a_time = self.reload_lock.lock().await;
        let result = self.try_reload();
        let label = if result.is_ok() { "success" } else { "failure" };
        metrics()
            .config_reloads_total
            .with_label_values(&[label])
            .inc();
        match &result {
            Ok(()) => tracing::info!("configuration reloaded"),
            Err(e) => {
                tracing::error!(error = %e, "reload failed; keeping the running configuration")
            }
        }
        result
    }

    fn try_reload(&self) -> Result<(), AppError> {
        let Some(path) = &self.config_path else {
            return Ok(()); // built-in config: nothing to re-read
        };
        let new = Config::load(path)?;
        let old = self.shared.runtime_full();
        if new.listen != old.config.listen || new.admin_listen != old.config.admin_listen {
            tracing::warn!("listen/admin addresses changed: they apply at the next restart");
        }
        let rt = Runtime::build(Arc::new(new), Some(&old))?;
        self.shared.swap(rt);
        self.discovery.reconcile(&self.shared);
        Ok(())
    }
}

/// Runs swarmgate until SIGTERM/SIGINT, then drains.
pub async fn run(app: Arc<App>) -> Result<(), AppError> {
    // Signal handlers first: a SIGHUP or SIGTERM that arrives once the port accepts
    // connections must reload or drain, not kill the process (their default action).
    let signals = Signals::install()?;
    let rt = app.shared.runtime_full();
    let config = rt.config.clone();
    drop(rt);
    let tls = config
        .tls
        .as_ref()
        .map(crate::tls::server_config)
        .transpose()?
        .map(tokio_rustls::TlsAcceptor::from);
    let mut listeners = Vec::new();
    for addr in config.listen.iter().copied() {
        let l = TcpListener::bind(addr)
            .await
            .map_err(|source| AppError::Bind { addr, source })?;
        tracing::info!(addr = %l.local_addr().unwrap_or(addr), "proxy listening");
        listeners.push((addr, l));
    }
    let hub = match &config.tunnel {
        Some(t) => Some(crate::tunnel::hub::Hub::bind(t).await?),
        None => None,
    };
    let admin = match config.admin_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|source| AppError::Bind { addr, source })?,
        ),
        None => None,
    };

    let bound = Bound {
        proxy: listeners
            .iter()
            .filter_map(|(_, l)| l.local_addr().ok())
            .collect(),
        admin: admin.as_ref().and_then(|l| l.local_addr().ok()),
    };
    app.shared
        .set_own_addrs(bound.proxy.iter().copied().chain(bound.admin).collect());
    app.bound.send_replace(Some(bound));
    let (stop_tx, stop_rx) = watch::channel(false);
    let drain = Arc::new(Drain::default());
    let ctx = ListenerCtx {
        listen: config.listen[0],
        shared: app.shared.clone(),
        tls,
        shutdown: stop_rx.clone(),
        drain: drain.clone(),
        limit: (config.client.max_connections > 0)
            .then(|| Arc::new(Semaphore::new(config.client.max_connections))),
    };
    let mut accept_tasks = Vec::new();
    for (addr, l) in listeners {
        let ctx = ListenerCtx {
            listen: addr,
            ..ctx.clone()
        };
        accept_tasks.push(tokio::spawn(accept_loop(l, ctx)));
    }
    if let Some(l) = admin {
        if config.admin_token_file.is_none()
            && config.admin_listen.is_some_and(|a| !a.ip().is_loopback())
        {
            tracing::warn!("admin.listen is not loopback and admin.token_file is not set: POST /api/reload is open to the network");
        }
        tracing::info!(addr = %l.local_addr().map_or_else(|_| "?".into(), |a| a.to_string()), "admin listening");
        tokio::spawn(crate::admin::serve(l, app.clone(), stop_rx.clone()));
    }
    if let Some(hub) = hub {
        tracing::info!(addr = %hub.local_addr().map_or_else(|_| "?".into(), |a| a.to_string()), "tunnel hub listening");
        tokio::spawn(hub.serve(stop_rx.clone()));
    }
    app.discovery.reconcile(&app.shared);
    tokio::spawn(maintenance(app.shared.clone()));
    // Active health checks (no-op for upstreams without `health_check`).
    tokio::spawn(crate::health::run(app.shared.clone(), stop_rx.clone()));

    wait_for_stop(&app, signals).await;

    tracing::info!(grace = ?config.shutdown_timeout, connections = drain.live(), "shutting down: draining");
    app.shared.begin_shutdown();
    let _ = stop_tx.send(true);
    for t in accept_tasks {
        let _ = t.await;
    }
    if tokio::time::timeout(config.shutdown_timeout, drain.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = drain.live(),
            "grace period over; closing remaining connections"
        );
    }
    // Route tables' last_activity, written back once more.
    let rt = app.shared.runtime_full();
    let _ = tokio::task::spawn_blocking(move || {
        for t in rt.tables() {
            t.flush();
        }
    })
    .await;
    tracing::info!("stopped");
    Ok(())
}

struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Self, AppError> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate()).map_err(AppError::Signal)?,
            int: signal(SignalKind::interrupt()).map_err(AppError::Signal)?,
            hup: signal(SignalKind::hangup()).map_err(AppError::Signal)?,
        })
    }
}

/// Returns on SIGTERM or SIGINT; reloads on SIGHUP meanwhile.
async fn wait_for_stop(app: &Arc<App>, mut s: Signals) {
    loop {
        tokio::select! {
            _ = s.term.recv() => return,
            _ = app.stop.notified() => return,
            _ = s.int.recv() => return,
            _ = s.hup.recv() => {
                tracing::info!("SIGHUP: reloading configuration");
                let _ = app.reload().await;
            }
        }
    }
}

/// Closes pooled upstream connections past `keepalive_timeout` (named upstreams and the
/// targets routes made on demand).
async fn maintenance(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = Instant::now();
        let rt = shared.runtime();
        for u in &rt.upstreams {
            u.reap_idle(now);
        }
        for r in &rt.routes {
            r.target.reap(now);
        }
    }
}
