//! A real third-party proxy (nginx, Caddy) run by a test: found among Debian's install paths,
//! started in the foreground from a generated configuration in a temporary directory (its pid,
//! logs, temp files and state stay there), on a free 127.0.0.1 port, and killed when dropped. It
//! never touches a system service.
//!
//! Shared by the gateway's tests (`nginx`, `caddy`) and the binary's (`scale_out`, which
//! includes this file by path): one fixture for every test that puts a real proxy in front.
//! Synchronous on purpose, so blocking and async tests can both use it.
//!
//! A proxy that is not installed is a notice and a skipped test, except under CI (`CI` set),
//! where it is a failure: `.ci/run` installs both.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Which proxy, where Debian installs it, and the package `.ci/run` installs it from.
#[derive(Debug, Clone, Copy)]
pub struct Proxy {
    pub name: &'static str,
    pub paths: &'static [&'static str],
    pub package: &'static str,
}

pub const NGINX: Proxy = Proxy {
    name: "nginx",
    paths: &["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"],
    package: "nginx-light",
};

pub const CADDY: Proxy = Proxy {
    name: "caddy",
    paths: &["/usr/bin/caddy", "/usr/local/bin/caddy"],
    package: "caddy",
};

impl Proxy {
    /// The installed binary; `None` (with a notice) when missing outside CI, a panic in CI.
    pub fn binary(&self) -> Option<PathBuf> {
        let found = self.paths.iter().map(PathBuf::from).find(|p| p.exists());
        if found.is_none() {
            assert!(
                std::env::var_os("CI").is_none(),
                "{} is required in CI (apt-get install -y {})",
                self.name,
                self.package
            );
            eprintln!(
                "notice: {} not found; skipping its end-to-end test",
                self.name
            );
        }
        found
    }
}

/// A free 127.0.0.1 port (bound, then released for the process that will listen on it).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

pub struct ProxyProcess {
    child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
    name: &'static str,
}

impl std::fmt::Debug for ProxyProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} on 127.0.0.1:{}", self.name, self.port)
    }
}

impl ProxyProcess {
    /// Starts `proxy` with the configuration `config(dir, port)` written to `file` in a fresh
    /// temporary directory, with `args(dir, config_path)`, and waits until it accepts on `port`
    /// (from [`free_port`]; chosen by the caller when something must know it beforehand, such
    /// as an issuer URL naming the proxy).
    /// `HOME` and the XDG directories point into that directory, so nothing is written
    /// elsewhere. `None` when the proxy is not installed (see [`Proxy::binary`]).
    pub fn start(
        proxy: Proxy,
        port: u16,
        file: &str,
        config: impl FnOnce(&Path, u16) -> String,
        args: impl FnOnce(&Path, &Path) -> Vec<std::ffi::OsString>,
    ) -> Option<Self> {
        let bin = proxy.binary()?;
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join(file);
        std::fs::write(&conf, config(dir.path(), port)).expect("write proxy config");
        let log = std::fs::File::create(dir.path().join("output.log")).expect("log file");
        let child = Command::new(bin)
            .args(args(dir.path(), &conf))
            .env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", proxy.name));
        let mut started = Self {
            child,
            dir,
            port,
            name: proxy.name,
        };
        let addr = started.addr();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err() {
            let exited = matches!(started.child.try_wait(), Ok(Some(_)));
            assert!(
                !exited && Instant::now() < deadline,
                "{} did not start:\n{}",
                proxy.name,
                started.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(started)
    }

    /// nginx in the foreground, single process, on `port`, with `http(dir, port)` inside its
    /// `http { ... }` block (a `server` listening on 127.0.0.1:`port`). Pid, error log and temp
    /// paths are set here.
    pub fn nginx(port: u16, http: impl FnOnce(&Path, u16) -> String) -> Option<Self> {
        Self::start(
            NGINX,
            port,
            "nginx.conf",
            |dir, port| {
                let d = dir.display();
                format!(
                    "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
                     error_log {d}/error.log info;\nevents {{ worker_connections 256; }}\n\
                     http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  \
                     proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  \
                     uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n{}\n}}\n",
                    http(dir, port)
                )
            },
            |dir, conf| {
                vec![
                    "-p".into(),
                    dir.into(),
                    "-c".into(),
                    conf.into(),
                    "-e".into(),
                    dir.join("error.log").into(),
                ]
            },
        )
    }

    /// Caddy with a Caddyfile: global options turn off the admin endpoint (it would listen on
    /// the fixed port 2019) and automatic HTTPS and bind every site to 127.0.0.1 only, then
    /// `sites(port)` follows (a site on `http://HOST:port`).
    pub fn caddy(port: u16, sites: impl FnOnce(u16) -> String) -> Option<Self> {
        Self::start(
            CADDY,
            port,
            "Caddyfile",
            |_, port| {
                format!(
                    "{{\n    admin off\n    auto_https off\n    default_bind 127.0.0.1\n}}\n\n{}",
                    sites(port)
                )
            },
            |_, conf| {
                vec![
                    "run".into(),
                    "--adapter".into(),
                    "caddyfile".into(),
                    "--config".into(),
                    conf.into(),
                ]
            },
        )
    }

    pub fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// What the proxy wrote: its own output and, for nginx, its error log.
    pub fn log(&self) -> String {
        ["output.log", "error.log"]
            .iter()
            .filter_map(|f| std::fs::read_to_string(self.dir.path().join(f)).ok())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
