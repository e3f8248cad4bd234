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

/// The harness itself: axe-core runs on every page and finds a real fault, a clean page has
/// none, and the report carries captures. Without this, a broken harness would pass every page.
#[test]
fn the_harness_runs_axe_on_every_page_and_reports_faults() {
    let Some(chromium) = browser() else { return };
    let sink = Sink::start();
    let report = drive(
        &chromium,
        &json!({"steps": [
            {"goto": format!("{}/app/callback?code=abc&state=xyz", sink.url)},
            {"capture": "callback"},
            {"goto": format!("{}/faulty", sink.url)},
        ]}),
    );
    assert!(report.raw["error"].is_null(), "{:#}", report.raw);
    let pages = report.pages();
    assert_eq!(pages.len(), 2, "{:#}", report.raw);
    assert_eq!(pages[0]["status"], 200);
    assert_eq!(pages[0]["lang"], "en");
    assert!(
        Report::grave_violations(&pages[0]).is_empty(),
        "{:#}",
        pages[0]
    );
    let faults = Report::grave_violations(&pages[1]);
    assert!(
        faults.iter().any(|v| v["id"] == "image-alt"),
        "axe-core did not find the image without alt text: {:#}",
        pages[1]
    );
    assert!(report.capture("callback")["text"]
        .as_str()
        .is_some_and(|t| t.contains("code=abc&state=xyz")));
    let served: Vec<String> = sink
        .requests
        .lock()
        .expect("sink lock")
        .iter()
        .filter(|r| !r.starts_with("/favicon"))
        .cloned()
        .collect();
    assert_eq!(served, ["/app/callback?code=abc&state=xyz", "/faulty"]);
    // assert_clean looks only at the pages it is asked about.
    report.assert_clean(&[&format!("{}/app", sink.url)]);
}
