//! Docker fixtures shared by the tests that use the real engine: the `docker` CLI, the replica
//! image, unique names, and the skip rule (no engine: skipped, except with `CI=true`: fail).
#![allow(dead_code)]

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

pub const IMAGE: &str = "swarmgate-replica:test";

pub fn docker(args: &[&str]) -> Result<String, String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .map_err(|e| format!("docker {args:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!(
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

pub async fn docker_async(args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        docker(&refs)
    })
    .await
    .expect("join")
    .expect("docker command")
}

/// Whether the tests can run: engine reachable and replica image built (once per process).
pub fn ready() -> bool {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let r = READY.get_or_init(|| {
        docker(&["version", "--format", "{{.Server.Version}}"])?;
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/build-replica-image.sh"
        );
        let out = Command::new(script)
            .output()
            .map_err(|e| format!("{script}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{script} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    });
    match r {
        Ok(()) => true,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("docker engine required with CI=true: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED: no usable docker engine: {e}");
            false
        }
    }
}

pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{}-{:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos & 0xffff
    )
}

pub fn endpoint() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_owned())
}

pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Containers and networks of one test, named `<prefix>-<suffix>`, removed on drop (also when
/// the test fails): containers first, then networks.
pub struct Fixture {
    pub prefix: String,
    containers: std::sync::Mutex<Vec<String>>,
    networks: std::sync::Mutex<Vec<String>>,
}

impl Fixture {
    pub fn new(tag: &str) -> Fixture {
        Fixture {
            prefix: unique(tag),
            containers: Default::default(),
            networks: Default::default(),
        }
    }

    /// Removes `container` on drop too (one made outside [`Fixture::replica`]).
    pub fn track(&self, container: String) {
        self.containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(container);
    }

    /// `docker network create` `<prefix>-<suffix>` with `extra` options; returns its name.
    pub fn network(&self, suffix: &str, extra: &[&str]) -> String {
        let name = format!("{}-{suffix}", self.prefix);
        let mut args = vec!["network", "create"];
        args.extend_from_slice(extra);
        args.push(&name);
        docker(&args).expect("network create");
        self.networks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(name.clone());
        name
    }

    /// `docker run -d` a replica `<prefix>-<suffix>` on `net` (`REPLICA_NAME` = its name),
    /// `extra` before the image; returns its name.
    pub fn replica(&self, suffix: &str, net: &str, extra: &[&str]) -> String {
        self.container(&["run", "-d"], suffix, net, extra)
    }

    /// Like [`Fixture::replica`] but `docker create` only.
    pub fn create(&self, suffix: &str, net: &str, extra: &[&str]) -> String {
        self.container(&["create"], suffix, net, extra)
    }

    fn container(&self, verb: &[&str], suffix: &str, net: &str, extra: &[&str]) -> String {
        let name = format!("{}-{suffix}", self.prefix);
        self.track(name.clone());
        let env = format!("REPLICA_NAME={name}");
        let mut args = verb.to_vec();
        args.extend_from_slice(&["--name", &name, "--network", net, "-e", &env]);
        args.extend_from_slice(extra);
        args.push(IMAGE);
        docker(&args).expect("docker run");
        name
    }

    /// `container`'s address on `net`.
    pub fn ip(&self, container: &str, net: &str) -> std::net::IpAddr {
        let fmt = format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}");
        docker(&["inspect", "-f", &fmt, container])
            .expect("inspect")
            .parse()
            .expect("ip")
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let containers =
            std::mem::take(&mut *self.containers.lock().unwrap_or_else(|e| e.into_inner()));
        if !containers.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(containers.iter().map(String::as_str));
            let _ = docker(&args);
        }
        for n in self
            .networks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = docker(&["network", "rm", &n]);
        }
    }
}
