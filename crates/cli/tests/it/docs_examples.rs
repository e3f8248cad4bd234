//! Every shell and config example in `README.md` and `docs/` runs as written.
//!
//! Each document runs in a fresh temporary directory, its blocks in order, with the freshly built
//! `portcullis` first on `PATH` and no inherited `PORTCULLIS_*` settings. What a block needs is
//! said in the Markdown, in an HTML comment on the line just before it:
//!
//! - `<!-- not-run: REASON -->`: not run here (systemd, kubernetes, a remote host, ...); counted.
//! - `<!-- background: URL -->`: a second process (`serve`, `gateway`, an upstream); started in
//!   the background, then the harness waits until `URL` answers 2xx. Stopped when the document ends.
//! - `<!-- file: NAME -->` on a TOML block: written to `NAME` and checked with
//!   `portcullis config check --config NAME` (server configuration).
//! - `<!-- config-env: ASSIGNMENTS -->` on a TOML block: checked with `config check` run after
//!   these shell assignments, for an example that names a production host's secret files
//!   (`PORTCULLIS_DATABASE_URL_FILE=<(echo postgres://...)` stands in for the file; every key of
//!   the example is still checked).
//! - `<!-- gateway-file: NAME -->` on a TOML block: written to `NAME` and checked as a gateway
//!   configuration (the same parser `portcullis gateway` uses, which refuses unknown keys).
//! - `<!-- doc-test: server -->` anywhere in a document: the harness starts a fresh
//!   `portcullis serve` on 127.0.0.1:8080 (data in `./portcullis-data`) before its first block.
//!
//! Shell blocks (`sh`, `bash`, `shell`, `console` with `$ ` prompts) run under
//! `bash -euo pipefail`; variables a block sets are visible to the later blocks of the same
//! document. A TOML block without a marker is a server configuration checked with `config check`.
//! An unmarked block that fails fails the test.

use crate::common;

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Block {
    line: usize,
    lang: String,
    marker: Option<(String, String)>,
    body: String,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn documents() -> Vec<PathBuf> {
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    docs.insert(0, root().join("README.md"));
    docs
}

/// `<!-- key: value -->` or `<!-- key -->`.
fn marker(line: &str) -> Option<(String, String)> {
    let inner = line
        .trim()
        .strip_prefix("<!--")?
        .strip_suffix("-->")?
        .trim();
    let (key, value) = inner.split_once(':').unwrap_or((inner, ""));
    Some((key.trim().to_owned(), value.trim().to_owned()))
}

fn blocks(text: &str) -> Vec<Block> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(info) = lines[i].trim_start().strip_prefix("```") else {
            i += 1;
            continue;
        };
        let start = i;
        let mut body = String::new();
        i += 1;
        while i < lines.len() && lines[i].trim() != "```" {
            body.push_str(lines[i]);
            body.push('\n');
            i += 1;
        }
        let marker = lines[..start]
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .and_then(|l| marker(l));
        out.push(Block {
            line: start + 1,
            lang: info.split_whitespace().next().unwrap_or("").to_owned(),
            marker,
            body,
        });
        i += 1;
    }
    out
}

fn is_shell(lang: &str) -> bool {
    matches!(lang, "sh" | "bash" | "shell" | "console")
}

/// The runnable text of a shell block: a `console` block keeps only its `$ ` lines.
fn script(block: &Block) -> String {
    if block.lang != "console" {
        return block.body.clone();
    }
    block
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("$ "))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Runs `body` with the state of earlier blocks, and saves the variables and shell functions it
/// leaves behind.
fn wrap(body: &str) -> String {
    format!(
        r#"__base=" $(compgen -v | tr '\n' ' ') "
__base_functions=" $(compgen -A function | tr '\n' ' ') "
if [ -f .doc-state ]; then source .doc-state; fi
set -euo pipefail
{body}
for __v in $(compgen -v); do
  case "$__base" in *" $__v "*) continue ;; esac
  case "$__v" in __*) continue ;; esac
  declare -p "$__v"
done > .doc-state.new
for __f in $(compgen -A function); do
  case "$__base_functions" in *" $__f "*) continue ;; esac
  declare -f "$__f"
done >> .doc-state.new
mv .doc-state.new .doc-state
"#
    )
}

struct Runner {
    dir: tempfile::TempDir,
    path: String,
    background: Vec<Child>,
}

impl Runner {
    fn new() -> Self {
        let bin_dir = Path::new(common::BIN).parent().expect("bin dir").to_owned();
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
            path,
            background: Vec::new(),
        }
    }

    fn bash(&self, script: &str) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg("-c").arg(script).current_dir(self.dir.path());
        for (k, _) in std::env::vars() {
            if k.starts_with("PORTCULLIS_") {
                cmd.env_remove(k);
            }
        }
        cmd.env_remove("RUST_LOG").env("PATH", &self.path);
        cmd
    }

    /// Runs a block to completion (at most two minutes); `Err` holds what it printed.
    fn run(&self, script: &str) -> Result<(), String> {
        let mut child = self
            .bash(&wrap(script))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("spawn bash");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if Instant::now() > deadline {
                kill_group(&mut child);
                return Err("timed out after 120 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().expect("output");
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{}\nstdout:\n{}\nstderr:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Starts a block in the background and waits until `ready` answers 2xx.
    fn start(&mut self, script: &str, ready: &str) -> Result<(), String> {
        let log = self
            .dir
            .path()
            .join(format!(".bg-{}.log", self.background.len()));
        let file = std::fs::File::create(&log).expect("log file");
        let mut child = self
            .bash(&format!(
                "if [ -f .doc-state ]; then source .doc-state; fi\nset -euo pipefail\n{script}"
            ))
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone"))
            .stderr(file)
            .process_group(0)
            .spawn()
            .expect("spawn bash");
        let http = common::http();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if http
                .get(ready)
                .timeout(Duration::from_secs(2))
                .send()
                .is_ok_and(|r| r.status().is_success())
            {
                self.background.push(child);
                return Ok(());
            }
            let exited = matches!(child.try_wait(), Ok(Some(_)));
            if exited || Instant::now() > deadline {
                kill_group(&mut child);
                let what = if exited { "exited" } else { "timed out" };
                return Err(format!(
                    "{what} before {ready} answered:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        for child in &mut self.background {
            kill_group(child);
        }
    }
}

/// Stops a block and everything it started (its own process group).
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", "--", &format!("-{}", child.id())])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .status();
    let _ = child.wait();
}

fn check_gateway_config(text: &str) -> Result<(), String> {
    portcullis_gateway::config::GatewayConfig::from_toml(text)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[derive(Default, Debug)]
struct Tally {
    ran: usize,
    not_run: BTreeMap<String, String>,
    failures: Vec<String>,
}

fn run_document(doc: &Path, tally: &mut Tally) {
    let name = doc
        .strip_prefix(root())
        .unwrap_or(doc)
        .display()
        .to_string();
    let text = std::fs::read_to_string(doc).expect("read document");
    let mut runner = Runner::new();
    if text
        .lines()
        .any(|l| marker(l).is_some_and(|(k, v)| k == "doc-test" && v == "server"))
    {
        let started = runner.start(
            "exec portcullis serve --listen 127.0.0.1:8080 --data-dir ./portcullis-data",
            "http://127.0.0.1:8080/readyz",
        );
        if let Err(e) = started {
            tally
                .failures
                .push(format!("{name}: the fresh server: {e}"));
            return;
        }
    }
    for block in blocks(&text) {
        let at = format!("{name}:{}", block.line);
        let shell = is_shell(&block.lang);
        if !shell && block.lang != "toml" {
            continue;
        }
        let (key, value) = block.marker.clone().unwrap_or_default();
        let result = match key.as_str() {
            "not-run" => {
                assert!(!value.is_empty(), "{at}: `not-run` needs a reason");
                tally.not_run.insert(at, value);
                continue;
            }
            "background" if shell => runner.start(&script(&block), &value),
            "file" | "gateway-file" | "config-env" | "" if block.lang == "toml" => {
                let file = if value.is_empty() || key == "config-env" {
                    format!(".example-{}.toml", block.line)
                } else {
                    value.clone()
                };
                std::fs::write(runner.dir.path().join(&file), &block.body).expect("write");
                if key == "gateway-file" {
                    check_gateway_config(&block.body)
                } else if key == "config-env" {
                    runner.run(&format!("{value} portcullis config check --config {file}"))
                } else {
                    runner.run(&format!("portcullis config check --config {file}"))
                }
            }
            "" if shell => runner.run(&script(&block)),
            other => Err(format!(
                "unknown marker {other:?} for a {} block",
                block.lang
            )),
        };
        tally.ran += 1;
        if let Err(e) = result {
            tally
                .failures
                .push(format!("{at} ({} block) failed: {e}", block.lang));
        }
    }
}

#[test]
fn every_shell_and_config_example_in_the_docs_runs_as_written() {
    // The examples use the documented fixed ports (8080 and the gateway's), so documents run
    // one after another, and a port already taken is reported rather than misread as a failure.
    if std::net::TcpListener::bind("127.0.0.1:8080").is_err() {
        panic!("127.0.0.1:8080 is in use; the documentation examples need it free");
    }
    let mut tally = Tally::default();
    for doc in documents() {
        run_document(&doc, &mut tally);
    }
    eprintln!(
        "documentation examples: {} run, {} marked not-run:",
        tally.ran,
        tally.not_run.len()
    );
    for (at, why) in &tally.not_run {
        eprintln!("  not run: {at}: {why}");
    }
    assert!(
        tally.failures.is_empty(),
        "{} example(s) failed:\n\n{}",
        tally.failures.len(),
        tally.failures.join("\n\n")
    );
    assert!(tally.ran > 0, "no examples found");
}

#[test]
fn the_harness_reads_markers_languages_and_console_prompts() {
    let text = "intro\n\n<!-- not-run: needs kubernetes -->\n```sh\nkubectl apply\n```\n\n\
                ```console\n$ echo hi\nhi\n```\n<!-- gateway-file: gateway.toml -->\n```toml\na = 1\n```\n";
    let b = blocks(text);
    assert_eq!(b.len(), 3);
    assert_eq!(
        b[0].marker,
        Some(("not-run".into(), "needs kubernetes".into()))
    );
    assert_eq!(b[0].line, 4);
    assert_eq!(b[1].marker, None);
    assert_eq!(script(&b[1]), "echo hi\n");
    assert_eq!(b[2].lang, "toml");
    assert_eq!(
        b[2].marker,
        Some(("gateway-file".into(), "gateway.toml".into()))
    );
}

#[test]
fn a_failing_block_fails_and_state_carries_between_blocks() {
    let runner = Runner::new();
    assert!(
        runner.run("false").is_err(),
        "a failing command fails its block"
    );
    assert!(runner.run("false | true").is_err(), "pipefail is on");
    runner.run("GREETING=hello").expect("sets a variable");
    runner
        .run("test \"$GREETING\" = hello")
        .expect("a later block sees it");
    runner
        .run("greet() { echo \"$GREETING, $1\"; }")
        .expect("defines a function");
    runner
        .run("test \"$(greet there)\" = 'hello, there'")
        .expect("a later block calls it");
    assert!(
        runner.run("echo \"$UNSET_VARIABLE\"").is_err(),
        "nounset is on"
    );
    runner
        .run("portcullis --version")
        .expect("the freshly built portcullis is on PATH");
}

#[test]
fn an_unmarked_failing_example_fails_and_a_marked_one_is_only_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let doc = dir.path().join("doc.md");
    std::fs::write(
        &doc,
        "# t\n\n```sh\nexit 3\n```\n\n<!-- not-run: needs kubernetes -->\n```sh\nkubectl apply -f x\n```\n\n\
         ```toml\nno_such_key = 1\n```\n\n<!-- gateway-file: gateway.toml -->\n```toml\nlisten = 1\n```\n\n\
         ```text\nnot run, not counted\n```\n",
    )
    .expect("write");
    let mut tally = Tally::default();
    run_document(&doc, &mut tally);
    assert_eq!(tally.ran, 3, "{tally:?}");
    assert_eq!(tally.not_run.len(), 1, "{tally:?}");
    assert_eq!(tally.failures.len(), 3, "{tally:?}");
    assert!(
        tally.failures[0].contains(":3 (sh block) failed"),
        "{tally:?}"
    );
    assert!(
        tally.failures[1].contains("no_such_key"),
        "unknown config keys fail: {tally:?}"
    );
    assert!(tally.failures[2].contains("gateway config"), "{tally:?}");
}
