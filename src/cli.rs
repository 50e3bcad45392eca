//! Command line (clap). `swarmgate [--config PATH]` runs; `swarmgate check --config PATH`
//! validates like `nginx -t`; `swarmgate healthcheck` probes the admin `/healthz` (for a
//! Docker HEALTHCHECK in an image without curl); `swarmgate agent --config agent.yaml` runs
//! the reverse-tunnel agent; `swarmgate import nginx PATH` translates an nginx.conf.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Where the config comes from when `--config` and `SWARMGATE_CONFIG` are absent.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/swarmgate/swarmgate.yaml";

/// The built-in configuration: Docker discovery on `kuscia-exchange-cluster` with Kuscia's
/// nginx values, used when no config file is given or found.
pub const BUILTIN_CONFIG: &str = include_str!("../config/builtin.yaml");

#[derive(Debug, Parser)]
#[command(
    name = "swarmgate",
    version,
    about = "Load-balancing front for Kuscia replicas on a Docker Swarm overlay"
)]
pub struct Cli {
    /// Config file (YAML). Default: $SWARMGATE_CONFIG, else /etc/swarmgate/swarmgate.yaml if
    /// present, else the built-in config.
    #[arg(short, long, env = "SWARMGATE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "SWARMGATE_LOG_FORMAT", global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the configuration and exit (0 = valid).
    Check,
    /// Exit 0 when the admin listener answers /healthz with 200.
    Healthcheck {
        /// Admin address to probe; default the config's `admin.listen`.
        #[arg(long)]
        admin: Option<String>,
    },
    /// Run the reverse-tunnel agent (`--config` names the agent file with `agent:`).
    Agent,
    /// Translate another proxy's configuration: prints swarmgate YAML on stdout and lists
    /// what it could not translate on stderr (`file:line: directive: reason`).
    Import {
        #[command(subcommand)]
        from: ImportFrom,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImportFrom {
    /// An nginx.conf (with its includes).
    Nginx {
        /// The main nginx configuration file.
        path: PathBuf,
    },
}

impl Cli {
    /// The config file to use, if any (None = built-in).
    pub fn config_path(&self) -> Option<PathBuf> {
        self.config.clone().or_else(|| {
            let p = PathBuf::from(DEFAULT_CONFIG_PATH);
            p.is_file().then_some(p)
        })
    }
}
