use anyhow::Context;
use clap::Parser;
use swarmgate::cli::{Cli, Command, ImportFrom, LogFormat, BUILTIN_CONFIG};
use swarmgate::config::{parse_config, Config};

/// mimalloc instead of glibc malloc: every request allocates a task cell (aligned, which glibc
/// serves slowly), header maps and buffers; README "Performance" has the counts. Its arena
/// commit setting is in .cargo/config.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn load(cli: &Cli) -> anyhow::Result<Config> {
    match cli.config_path() {
        Some(path) => Config::load(&path).with_context(|| format!("{}", path.display())),
        None => parse_config(BUILTIN_CONFIG).context("built-in config"),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Check) => {
            let cfg = load(&cli)?;
            let what = cli
                .config_path()
                .map_or_else(|| "built-in config".to_owned(), |p| p.display().to_string());
            println!(
                "swarmgate: {what}: ok ({} upstream(s), {} route(s))",
                cfg.upstreams.len(),
                cfg.routes.len()
            );
            return Ok(());
        }
        Some(Command::Healthcheck { admin }) => {
            // The admin address: --admin, else the config's admin.listen (0.0.0.0 → 127.0.0.1).
            let addr = match admin {
                Some(a) => a.clone(),
                None => match load(&cli)?.admin_listen {
                    Some(mut a) => {
                        if a.ip().is_unspecified() {
                            a.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                        }
                        a.to_string()
                    }
                    None => anyhow::bail!("the admin listener is disabled in the config"),
                },
            };
            return healthcheck(&addr);
        }
        Some(Command::Import {
            from: ImportFrom::Nginx { path },
        }) => {
            let out = swarmgate::import::nginx(path)?;
            print!("{}", out.yaml);
            for line in &out.skipped {
                eprintln!("{line}");
            }
            return Ok(());
        }
        Some(Command::Agent) => {
            init_logging(cli.log_format);
            let path = cli
                .config
                .clone()
                .context("swarmgate agent needs --config agent.yaml")?;
            let cfg = swarmgate::config::agent::AgentConfig::load(&path)
                .with_context(|| format!("{}", path.display()))?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("tokio runtime")?;
            return rt
                .block_on(swarmgate::tunnel::agent::run(cfg))
                .map_err(Into::into);
        }
        None => {}
    }
    init_logging(cli.log_format);
    let cfg = load(&cli)?;
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if cfg.workers > 0 {
        rt.worker_threads(cfg.workers);
    }
    // Poll the I/O driver every 8 scheduler ticks instead of tokio's 61: with many busy
    // streams the run queue never empties, and a connection whose socket became ready waits for
    // the next driver poll; 61 ticks of 256 KiB relays starved some streams for seconds
    // (issue 11: 10 MiB x 16 connections, p99/p50 12-15 before, about 2 after, with the yield in
    // `proxy::body`).
    rt.event_interval(EVENT_INTERVAL);
    // Look at the global queue every other tick. A worker's own queue holds 256 tasks; beyond
    // that (640 HTTP/2 streams and their connections, or ~250 busy keep-alive clients) tokio
    // moves the oldest half of it to the global queue, which a busy worker otherwise serves once
    // per 2 to 127 ticks (tuned to ~200 µs of polls), behind newer tasks: the oldest requests
    // waited longest (issue 12: h2c 64 x 10 p99 2.1-3.1x HAProxy's; 1.5-1.9x with this). Every
    // tick (1) was better at p99 but starved the worker's own queue while the global one was
    // refilled: stalls of 2.5-6 s in 3 runs of 5. An empty global queue costs one atomic load.
    rt.global_queue_interval(GLOBAL_QUEUE_INTERVAL);
    let rt = rt.enable_all().build().context("tokio runtime")?;
    rt.block_on(async {
        let app = swarmgate::app::App::new(cfg, cli.config_path())?;
        swarmgate::app::run(app).await
    })?;
    Ok(())
}

/// Scheduler ticks between two polls of the I/O driver while tasks are runnable (tokio: 61).
const EVENT_INTERVAL: u32 = 8;

/// Scheduler ticks between two looks at the runtime's global queue (tokio: tuned, 2 to 127):
/// the least tokio's tuning would pick, so tasks moved there when a worker's own queue
/// overflowed are not left behind every newer one.
const GLOBAL_QUEUE_INTERVAL: u32 = 2;

/// A blocking one-shot GET of /healthz (no runtime needed).
fn healthcheck(admin: &str) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(admin).with_context(|| format!("connect {admin}"))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(3)))?;
    s.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf)?;
    let head = String::from_utf8_lossy(&buf[..n]);
    anyhow::ensure!(
        head.starts_with("HTTP/1.") && head.contains(" 200 "),
        "unhealthy: {head}"
    );
    Ok(())
}
