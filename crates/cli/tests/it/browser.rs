//! A real browser through the real pages (issue 16): headless Chromium (Debian's `chromium`),
//! driven by `playwright-core` from `tests/browser/drive.mjs`, against the `portcullis` binary,
//! with axe-core run on every page the browser lands on. Any serious or critical accessibility
//! violation fails the test, as does a Content-Security-Policy report in the console.
//!
//! `.ci/run` installs Chromium and the npm packages; in CI (`CI` set) their absence is a failure,
//! elsewhere the test prints a notice and passes without a browser. One Chromium per test run:
//! the flow is one plan of steps, judged here from the script's report.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

/// Debian's Chromium (a wrapper script that Playwright launches like the binary).
const CHROMIUM: &str = "/usr/bin/chromium";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// The Chromium executable and node, or `None` (with a notice) when this machine has no browser
/// set up. In CI a missing piece fails the test: the browser check may not be skipped there.
pub fn browser() -> Option<PathBuf> {
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let chromium = Path::new(CHROMIUM).is_file();
    let packages = ["playwright-core", "axe-core"]
        .iter()
        .all(|p| browser_dir().join("node_modules").join(p).is_dir());
    if node && chromium && packages {
        return Some(PathBuf::from(CHROMIUM));
    }
    let missing = format!(
        "node: {node}, {CHROMIUM}: {chromium}, npm packages in {}: {packages}",
        browser_dir().display()
    );
    assert!(
        std::env::var("CI").is_err(),
        "the browser test needs Chromium, node and `npm ci` in tests/browser in CI \
         (.ci/run installs them): {missing}"
    );
    eprintln!("notice: skipping the browser test ({missing}); `.ci/run` installs what it needs");
    None
}

/// What `drive.mjs` reports.
#[derive(Debug)]
pub struct Report {
    pub raw: Value,
}

impl Report {
    pub fn pages(&self) -> &[Value] {
        self.raw["pages"].as_array().map_or(&[], Vec::as_slice)
    }

    pub fn capture(&self, name: &str) -> &Value {
        &self.raw["captures"][name]
    }

    /// The serious and critical axe-core violations of the page at `url_prefix`.
    pub fn grave_violations(page: &Value) -> Vec<&Value> {
        page["violations"]
            .as_array()
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .collect()
    }

    /// Panics, with the violations, if a page whose URL starts with one of `checked` has a
    /// serious or critical violation, or the script stopped early, or the console reported a
    /// CSP violation.
    pub fn assert_clean(&self, checked: &[&str]) {
        assert!(
            self.raw["error"].is_null(),
            "the browser script stopped: {}\npages so far: {:#}",
            self.raw["error"],
            self.raw["pages"]
        );
        let mut grave = Vec::new();
        for page in self.pages() {
            let url = page["url"].as_str().unwrap_or_default();
            if !checked.iter().any(|p| url.starts_with(p)) {
                continue;
            }
            for v in Self::grave_violations(page) {
                grave.push(format!("{url}: {v}"));
            }
        }
        assert!(
            grave.is_empty(),
            "serious or critical accessibility violations:\n{}",
            grave.join("\n")
        );
        assert_eq!(
            self.raw["csp_reports"],
            json!([]),
            "the pages broke their own Content-Security-Policy"
        );
    }
}

/// Runs one plan (`{"steps": [...]}`) in one Chromium.
pub fn drive(chromium: &Path, plan: &Value) -> Report {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan_path = dir.path().join("plan.json");
    std::fs::write(&plan_path, plan.to_string()).expect("write plan");
    let out = Command::new("node")
        .arg(browser_dir().join("drive.mjs"))
        .arg(chromium)
        .arg(&plan_path)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let raw: Value = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "drive.mjs printed no report ({}):\n{stdout}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        });
    Report { raw }
}

/// A tiny HTTP server for the pages that are not Portcullis's: the app's redirect target (it
/// shows the query it was called with) and a page with a known accessibility fault (the
/// harness must report it, or it checks nothing). Records every request target it serves.
pub struct Sink {
    pub url: String,
    pub requests: Arc<Mutex<Vec<String>>>,
}

pub const GOOD_PAGE: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
    <title>Example app</title></head><body><main><h1>Example app</h1>\
    <p id=\"query\">QUERY</p></main></body></html>";
/// An image with no text alternative: axe-core's `image-alt`, impact critical.
pub const BAD_PAGE: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
    <title>Faulty page</title></head><body><main><h1>Faulty</h1>\
    <img src=\"data:image/gif;base64,R0lGODlhAQABAAAAACw=\"></main></body></html>";

impl Sink {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind sink");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let target = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
                // Skip the headers (GET requests only: no body).
                let mut header = String::new();
                while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                    header.clear();
                }
                seen.lock().expect("sink lock").push(target.clone());
                let body = if target.starts_with("/faulty") {
                    BAD_PAGE.to_owned()
                } else {
                    let query = target.split_once('?').map_or("", |(_, q)| q);
                    GOOD_PAGE.replace("QUERY", &html_escape(query))
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Self { url, requests }
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The `n`th mail in the development outbox, quoted-printable undone (waits for the sender).
fn mail(data: &Path, n: usize) -> String {
    for _ in 0..500 {
        let mut files: Vec<_> = std::fs::read_dir(data.join("outbox"))
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        if let Some(f) = files.get(n) {
            return std::fs::read_to_string(f)
                .expect("mail")
                .replace("=\r\n", "")
                .replace("=\n", "")
                .replace("=3D", "=")
                .replace("=0A", "\n");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("no mail {n} in the outbox");
}

/// The first `http...` link in a mail.
fn link_in(mail: &str) -> String {
    let at = mail.find("http").expect("a link");
    mail[at..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect()
}

/// PKCE S256 (RFC 7636): base64url(SHA-256("browser-test-verifier-0123456789abcdefghijklmnopqrstuvwxyz")),
/// computed once. The code's redemption is the token endpoint's test; this one ends at the app.
const CHALLENGE: &str = "WOE_wViglE6hbmmOUa5CGKCpMXaWyuM7JideCytp9yI";
const VERIFIER: &str = "browser-test-verifier-0123456789abcdefghijklmnopqrstuvwxyz";
const PASSWORD: &str = "velvet orbit lantern quiz 42";

/// The whole browser flow in one Chromium session: an invited user opens the mailed link and
/// chooses a password, an app sends the browser to the authorization endpoint, the user signs in
/// and consents, the browser lands on the app's redirect page with `code`, `state` and `iss`; the
/// app redeems the code (PKCE) and refreshes (rotation) with the browser context's HTTP stack;
/// then the account page, RP-initiated logout with the refreshed ID token as `id_token_hint`
/// back to the app's registered post-logout page with `state`, the account page signed out, the
/// forgot-password page. axe-core checks every page; a planted fault at the end proves the check
/// ran. (Ending a session from the account page is covered over HTTP in `account_pages.rs`.)
#[test]
fn a_browser_accepts_an_invitation_signs_in_consents_and_signs_out() {
    let Some(chromium) = browser() else { return };
    let data = tempfile::tempdir().expect("tempdir");
    let server = crate::common::Server::start(data.path(), &[]);
    let sink = Sink::start();
    let signed_out_page = format!("{}/signed-out", sink.url);
    server.cli_json(&["tenant", "create", "shop", "--name", "Shop"]);
    let user = server.cli_json(&[
        "users",
        "create",
        "--tenant",
        "shop",
        "--username",
        "alice",
        "--email",
        "alice@example.com",
    ]);
    let user_id = user["id"].as_str().expect("id").to_owned();
    let client = server.cli_json(&[
        "client",
        "create",
        "--tenant",
        "shop",
        "--name",
        "Shop app",
        "--application-type",
        "native",
        "--redirect-uri",
        "http://127.0.0.1/callback",
        "--post-logout-redirect-uri",
        &signed_out_page,
        "--grant-type",
        "authorization_code,refresh_token",
        "--scope",
        "openid,offline_access",
    ]);
    let client_id = client["client_id"].as_str().expect("client_id").to_owned();
    let invite = link_in(&mail(data.path(), 0));
    assert!(invite.contains("/account/shop/invite?token="), "{invite}");
    let redirect = format!("{}/callback", sink.url);
    let authorize = format!(
        "{}/oauth2/authorize?response_type=code&client_id={client_id}&redirect_uri={}\
         &scope=openid%20offline_access&state=st-4711&nonce=n-1&code_challenge={CHALLENGE}\
         &code_challenge_method=S256",
        server.url,
        form_urlencoded::byte_serialize(redirect.as_bytes()).collect::<String>()
    );
    let account = format!("{}/account/shop/", server.url);
    let token_url = format!("{}/oauth2/token", server.url);
    let end_session = format!(
        "{}/oauth2/logout?client_id={client_id}&post_logout_redirect_uri={}&state=bye-1",
        server.url,
        form_urlencoded::byte_serialize(signed_out_page.as_bytes()).collect::<String>()
    );
    let report = drive(
        &chromium,
        &json!({"steps": [
            {"goto": invite},
            {"fill": {"#password": PASSWORD, "#confirm": PASSWORD}},
            {"click": "form button[type=submit]"},
            {"capture": "invited"},
            {"goto": authorize},
            {"fill": {"#login": "alice", "#password": PASSWORD}},
            {"click": "form button[type=submit]"},
            {"capture": "consent"},
            {"click": "button[name=decision][value=allow]"},
            {"expect_path": "/callback"},
            {"capture": "callback"},
            {"cookies": "cookies"},
            {"post": {"name": "tokens", "url": token_url, "form": {
                "grant_type": "authorization_code", "redirect_uri": redirect,
                "client_id": client_id, "code_verifier": VERIFIER,
            }, "from": {"code": "callback.query.code"}}},
            {"post": {"name": "refreshed", "url": token_url, "form": {
                "grant_type": "refresh_token", "client_id": client_id,
            }, "from": {"refresh_token": "tokens.json.refresh_token"}}},
            {"goto": account},
            {"capture": "account"},
            {"goto": end_session, "from": {"id_token_hint": "refreshed.json.id_token"}},
            {"expect_path": "/signed-out"},
            {"capture": "signed_out"},
            {"goto": account},
            {"capture": "after"},
            {"goto": format!("{}/account/shop/forgot", server.url)},
            {"goto": format!("{}/faulty", sink.url)},
        ]}),
    );
    report.assert_clean(&[&server.url, &format!("{}/callback", sink.url)]);

    assert!(
        report.capture("invited")["text"]
            .as_str()
            .is_some_and(|t| t.contains("Your password is saved")),
        "{:#}",
        report.raw
    );
    assert!(report.capture("consent")["text"]
        .as_str()
        .is_some_and(|t| t.contains("Shop app")));
    let callback = report.capture("callback")["url"].as_str().expect("url");
    let query: Vec<(String, String)> =
        form_urlencoded::parse(callback.split_once('?').map_or("", |(_, q)| q).as_bytes())
            .into_owned()
            .collect();
    let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert!(get("code").is_some_and(|c| !c.is_empty()), "{callback}");
    assert_eq!(get("state"), Some("st-4711"), "{callback}");
    assert_eq!(get("iss"), Some(server.url.as_str()), "{callback}");
    assert!(
        sink.requests
            .lock()
            .expect("sink lock")
            .iter()
            .any(|r| r.starts_with("/callback?") && r.contains("state=st-4711")),
        "the app's redirect page was not reached"
    );
    let cookies = &report.capture("cookies")["cookies"];
    let session = cookies
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "pcl-session-shop"))
        .unwrap_or_else(|| panic!("no session cookie: {cookies}"));
    assert_eq!(
        (session["httpOnly"].as_bool(), session["sameSite"].as_str()),
        (Some(true), Some("Lax"))
    );
    let account_text = report.capture("account")["text"]
        .as_str()
        .unwrap_or_default();
    assert!(
        account_text.contains("alice") && account_text.contains("This browser"),
        "{account_text}"
    );
    // The code redeemed, then refreshed: a rotated refresh token and a fresh ID token.
    let tokens = report.capture("tokens");
    assert_eq!(tokens["status"], 200, "{tokens}");
    let refreshed = report.capture("refreshed");
    assert_eq!(refreshed["status"], 200, "{refreshed}");
    assert!(refreshed["json"]["id_token"].is_string(), "{refreshed}");
    assert_ne!(
        refreshed["json"]["refresh_token"], tokens["json"]["refresh_token"],
        "rotated"
    );
    // RP-initiated logout with a hint for this very session: no confirmation, straight back to
    // the registered post-logout page with the app's state.
    let signed_out = report.capture("signed_out")["url"].as_str().expect("url");
    assert!(
        signed_out.starts_with(&signed_out_page) && signed_out.contains("state=bye-1"),
        "{signed_out}"
    );
    assert!(report.capture("after")["text"]
        .as_str()
        .is_some_and(|t| t.contains("You are not signed in")));
    let listed = server.cli_json(&["users", "sessions", "--tenant", "shop", &user_id]);
    assert_eq!(listed["items"], json!([]), "the signed-out session is gone");

    // The harness found the planted fault: without this, a broken check would pass every page.
    let faulty = report.pages().last().expect("pages");
    assert!(
        Report::grave_violations(faulty)
            .iter()
            .any(|v| v["id"] == "image-alt"),
        "axe-core did not find the image without alt text: {faulty:#}"
    );
}
