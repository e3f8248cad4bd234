//! `portcullis login` and `portcullis logout` through the real binary (issue 18 item 7): the
//! CLI starts device sign-in and prints the code, a browser-less form flow (an HTTP client
//! keeping cookies, posting the `/device` forms) signs a person in and approves, the CLI saves
//! its tokens (mode 0600) and admin commands use them without any admin token; a person
//! without an admin role is refused; logout revokes at the server, so the refresh token stops
//! working, and deletes the file.
//!
//! The person's browser is a plain HTTP client with a hand-kept cookie jar ([`Browser`]): the
//! pages' cookies are host-only, session-lifetime and (on a plain-`http` issuer) not `Secure`,
//! so sending back every cookie the server set is what a browser would do here.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write as _};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{command, Server};

const PASSWORD: &str = "correct horse battery staple";

/// Runs the CLI with `config_home` as `XDG_CONFIG_HOME` and no bootstrap token in reach.
fn cli(server: &Server, config_home: &Path, args: &[&str]) -> Output {
    let empty = config_home.join("no-data-dir");
    command()
        .args(args)
        .args(["--url", &server.url, "--data-dir"])
        .arg(&empty)
        .env("XDG_CONFIG_HOME", config_home)
        .output()
        .expect("run cli")
}

/// Runs `portcullis logout`: it takes the server from the saved sign-in, not from a flag.
fn logout(config_home: &Path) -> Output {
    command()
        .arg("logout")
        .env("XDG_CONFIG_HOME", config_home)
        .output()
        .expect("run logout")
}

/// Creates a user of the system tenant with [`PASSWORD`]; its id.
fn user(server: &Server, dir: &Path, name: &str) -> String {
    tenant_user(server, dir, "system", name)
}

/// Creates a user of `tenant` with [`PASSWORD`]; its id.
fn tenant_user(server: &Server, dir: &Path, tenant: &str, name: &str) -> String {
    let file = dir.join(format!("{name}.password"));
    std::fs::write(&file, PASSWORD).expect("password file");
    let v = server.cli_json(&[
        "users",
        "create",
        "--tenant",
        tenant,
        "--username",
        name,
        "--password-file",
        file.to_str().expect("utf-8"),
    ]);
    v["id"].as_str().expect("id").to_owned()
}

/// Starts `portcullis login`; the child and the user code it printed.
fn start_login(server: &Server, config_home: &Path) -> (Child, String) {
    start_login_with(server, config_home, &[])
}

/// Starts `portcullis login` with `extra` arguments.
fn start_login_with(server: &Server, config_home: &Path, extra: &[&str]) -> (Child, String) {
    let mut child = command()
        .args(["login", "--url", &server.url])
        .args(extra)
        .env("XDG_CONFIG_HOME", config_home)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn login");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().expect("a line").expect("utf-8 line");
    let code = first
        .split("enter the code ")
        .nth(1)
        .expect("the code is printed")
        .trim()
        .to_owned();
    // Keep draining so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    (child, code)
}

fn wait(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "login did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn hidden_fields(html: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for part in html.split("<input type=\"hidden\" name=\"").skip(1) {
        let Some((name, rest)) = part.split_once('"') else {
            continue;
        };
        if let Some((value, _)) = rest
            .strip_prefix(" value=\"")
            .and_then(|r| r.split_once('"'))
        {
            out.push((name.to_owned(), value.to_owned()));
        }
    }
    out
}

/// A browser-less browser: one HTTP client, no redirects followed, and the cookies the server
/// set sent back on every later request.
struct Browser {
    http: reqwest::blocking::Client,
    cookies: BTreeMap<String, String>,
}

impl Browser {
    fn new() -> Self {
        Self {
            http: reqwest::blocking::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("browser"),
            cookies: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Keeps (or, for an empty or expired value, forgets) each cookie the answer set.
    fn keep(&mut self, r: &reqwest::blocking::Response) {
        for v in r.headers().get_all("set-cookie") {
            let v = v.to_str().expect("ascii cookie");
            let pair = v.split(';').next().unwrap_or_default();
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let gone = value.is_empty() || v.to_ascii_lowercase().contains("max-age=0");
            if gone {
                self.cookies.remove(name.trim());
            } else {
                self.cookies
                    .insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }

    fn get(&mut self, url: String) -> (u16, String) {
        let r = self
            .http
            .get(url)
            .header("cookie", self.cookie_header())
            .send()
            .expect("get");
        self.keep(&r);
        (r.status().as_u16(), r.text().expect("body"))
    }

    fn post(&mut self, url: String, fields: Vec<(String, String)>) -> (u16, String) {
        let r = self
            .http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", self.cookie_header())
            .body(serde_urlencoded_pairs(&fields))
            .send()
            .expect("post");
        self.keep(&r);
        (r.status().as_u16(), r.text().expect("body"))
    }
}

fn serde_urlencoded_pairs(fields: &[(String, String)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The person's side: opens `/device`, enters the code, signs in, approves.
fn approve(server: &Server, code: &str, login: &str) {
    let mut b = Browser::new();
    let (s, page) = b.get(format!("{}/device", server.url));
    assert_eq!(s, 200, "{page}");
    let mut fields = hidden_fields(&page);
    fields.push(("user_code".into(), code.into()));
    let (s, page) = b.post(format!("{}/device", server.url), fields);
    assert_eq!(s, 200, "{page}");
    let mut fields = hidden_fields(&page);
    fields.push(("login".into(), login.into()));
    fields.push(("password".into(), PASSWORD.into()));
    let (s, page) = b.post(format!("{}/device/sign-in", server.url), fields);
    assert_eq!(s, 200, "{page}");
    assert!(
        page.contains("act with your administrator role"),
        "the CLI's confirmation warns that it gets the person's admin role: {page}"
    );
    let mut fields = hidden_fields(&page);
    fields.push(("decision".into(), "allow".into()));
    let (s, page) = b.post(format!("{}/device/decide", server.url), fields);
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("Device connected"), "{page}");
}

#[test]
fn login_runs_admin_commands_with_the_users_role_and_logout_revokes() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = Server::start(data.path(), &[]);
    let home = tempfile::tempdir().expect("config home");
    let ops = user(&server, home.path(), "ops");
    user(&server, home.path(), "viewer");
    let out = server.cli(&[
        "users",
        "grant-role",
        "--tenant",
        "system",
        &ops,
        "--role",
        "global_admin",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Without a sign-in or an admin token, admin commands say how to get a credential.
    let out = cli(&server, home.path(), &["tenant", "list"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("portcullis login"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (mut child, code) = start_login(&server, home.path());
    approve(&server, &code, "ops");
    let status = wait(&mut child);
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        std::io::Read::read_to_string(&mut e, &mut err).expect("stderr");
    }
    assert!(status.success(), "login failed: {err}");

    let file = home.path().join("portcullis").join("credentials.json");
    let mode = std::fs::metadata(&file)
        .expect("credentials")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "credentials file mode {mode:o}");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("read")).expect("json");
    let refresh = saved["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned();

    // The saved sign-in is for this server only: a command aimed at another URL neither
    // succeeds nor sends the access token there.
    let other = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let other_url = format!("http://{}", other.local_addr().expect("addr"));
    let caught = std::thread::spawn(move || {
        let (mut conn, _) = other.accept().expect("accept");
        conn.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut buf = [0u8; 8192];
        let n = std::io::Read::read(&mut conn, &mut buf).unwrap_or(0);
        let _ = conn.write_all(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n");
        String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase()
    });
    let out = command()
        .args(["tenant", "list", "--url", &other_url, "--data-dir"])
        .arg(home.path().join("no-data-dir"))
        .env("XDG_CONFIG_HOME", home.path())
        .output()
        .expect("run cli");
    assert!(!out.status.success(), "no credential for another server");
    // Unblock the listener if the CLI never connected; either way no token reached it.
    let _ = std::net::TcpStream::connect(other_url.trim_start_matches("http://"))
        .and_then(|mut c| c.write_all(b"PING\r\n\r\n"));
    let request = caught.join().expect("listener thread");
    assert!(
        !request.contains("authorization"),
        "the saved token went to another server: {request}"
    );

    // An admin command with the sign-in alone (no bootstrap token, no PORTCULLIS_ADMIN_TOKEN).
    let out = cli(&server, home.path(), &["tenant", "create", "fromcli"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&server, home.path(), &["tenant", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("fromcli"));

    // Logout revokes at the server and deletes the file.
    let out = logout(home.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!file.exists());
    let r = crate::common::http()
        .post(format!("{}/oauth2/token", server.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=refresh_token&client_id=portcullis-cli&refresh_token={}",
            enc(&refresh)
        ))
        .send()
        .expect("refresh");
    assert_eq!(r.status().as_u16(), 400);
    let v: serde_json::Value = r.json().expect("json");
    assert_eq!(v["error"], "invalid_grant");
    let out = logout(home.path());
    assert!(out.status.success());

    // A person without an admin role signs in, and is refused (403) by every admin command.
    let (mut child, code) = start_login(&server, home.path());
    approve(&server, &code, "viewer");
    assert!(wait(&mut child).success());
    let out = cli(&server, home.path(), &["tenant", "list"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("403"), "{err}");
    let _ = std::io::stdout().flush();
}

/// Runs the CLI as the saved sign-in; its stdout on success, its stderr as the error.
fn run(server: &Server, home: &Path, args: &[&str]) -> Result<String, String> {
    let out = cli(server, home, args);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn a_tenants_people_sign_in_with_their_tenants_cli_client_and_act_only_there() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = Server::start(data.path(), &[]);
    let home = tempfile::tempdir().expect("config home");
    for tenant in ["acme", "globex"] {
        let out = server.cli(&["tenant", "create", tenant]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Each tenant got its own built-in client at creation.
    let shown = server.cli_json(&["client", "show", "--tenant", "acme", "portcullis-cli-acme"]);
    assert_eq!(shown["tenant"], "acme", "{shown}");
    let alice = tenant_user(&server, home.path(), "acme", "alice");
    let out = server.cli(&[
        "users",
        "grant-role",
        "--tenant",
        "acme",
        &alice,
        "--role",
        "tenant_admin",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // An acme user cannot sign in with the system tenant's client: no such user there.
    let (mut child, code) = start_login_with(&server, home.path(), &["--tenant", "acme"]);
    approve(&server, &code, "alice");
    assert!(wait(&mut child).success(), "login --tenant acme");
    let saved: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(home.path().join("portcullis").join("credentials.json"))
            .expect("credentials"),
    )
    .expect("json");
    assert_eq!(saved["client_id"], "portcullis-cli-acme");

    // Alice acts as acme's tenant admin, and nowhere else.
    let listed = run(
        &server,
        home.path(),
        &["client", "list", "--tenant", "acme"],
    )
    .expect("acme's clients");
    assert!(listed.contains("portcullis-cli-acme"), "{listed}");
    for refused in [
        &["client", "list", "--tenant", "globex"][..],
        &["tenant", "list"][..],
        &["tenant", "create", "initech"][..],
    ] {
        let err = run(&server, home.path(), refused).expect_err("refused");
        assert!(err.contains("403"), "{refused:?}: {err}");
    }
    // The built-in client cannot be given a redirect URI (its tokens act at the admin API),
    // not even by acme's own admin.
    let err = run(
        &server,
        home.path(),
        &[
            "client",
            "update",
            "--tenant",
            "acme",
            "portcullis-cli-acme",
            "--redirect-uri",
            "https://attacker.example/cb",
        ],
    )
    .expect_err("built-in client is fixed");
    assert!(
        err.contains("400") || err.contains("cannot be changed"),
        "{err}"
    );

    // A token of acme's CLI client for a user without a role: 403, not another tenant's role.
    let out = logout(home.path());
    assert!(out.status.success());
    tenant_user(&server, home.path(), "acme", "bob");
    let (mut child, code) = start_login_with(&server, home.path(), &["--tenant", "acme"]);
    approve(&server, &code, "bob");
    assert!(wait(&mut child).success());
    let err = run(
        &server,
        home.path(),
        &["client", "list", "--tenant", "acme"],
    )
    .expect_err("no role");
    assert!(err.contains("403"), "{err}");
}
