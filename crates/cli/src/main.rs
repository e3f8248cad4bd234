//! The `portcullis` binary. Thin by design: it parses arguments, then calls the server crate
//! (`serve`, `config check`, `keys rotate-kek`), the gateway crate (`gateway`) or the admin
//! HTTP API (everything else); `token` is an OAuth client of the token endpoint.

mod alerts;
mod answer_shape;
mod backup;
mod client;
mod commands;
mod federation;
mod form_post;
mod lifecycle;
mod login;
mod new_file;
mod token;
mod token_exchange;
mod token_response;
mod users;
mod webhooks;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// mimalloc instead of glibc's allocator: the gateway and the token service allocate small,
/// short-lived buffers on every request, and glibc's malloc/free were about 13% of the
/// gateway's instructions per proxied request (callgrind); see docs/BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "portcullis", version, about = "API authentication platform")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Text (a table for lists).
    #[value(alias = "table")]
    Text,
    Json,
}

/// How admin commands reach the server, and how they print.
#[derive(Debug, clap::Args)]
pub struct Remote {
    #[command(flatten)]
    server: Server,
    /// Output format.
    #[arg(long, value_enum, default_value = "text", global = true)]
    output: Output,
}

/// Which server admin commands call, and the data directory whose bootstrap token they fall
/// back on. (`report hygiene` pairs it with its own output formats, CSV among them.)
#[derive(Debug, Clone, clap::Args)]
pub struct Server {
    /// Base URL of a running Portcullis server.
    #[arg(
        long,
        env = "PORTCULLIS_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    url: String,
    /// Data directory whose bootstrap token is used when PORTCULLIS_ADMIN_TOKEN is unset.
    #[arg(
        long,
        env = "PORTCULLIS_DATA_DIR",
        default_value = "./portcullis-data",
        global = true
    )]
    data_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Run the gateway: reverse proxy and forward-auth endpoints enforcing per-route policy.
    /// SIGHUP reloads the configuration file.
    Gateway(GatewayArgs),
    /// Inspect configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Signing keys and the key-encryption key.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(commands::TenantCommand),
    /// Reports over a tenant's credentials: `report hygiene` (docs/hygiene.md).
    #[command(subcommand)]
    Report(lifecycle::ReportCommand),
    /// Manage admin tokens.
    #[command(subcommand, name = "admin-token")]
    AdminToken(commands::AdminTokenCommand),
    /// Read the audit log.
    #[command(subcommand)]
    Audit(commands::AuditCommand),
    /// The detectors' alerts: list, show, acknowledge, resolve (docs/alerts.md).
    #[command(subcommand)]
    Alerts(alerts::AlertsCommand),
    /// Webhook endpoints for alerts and their deliveries (docs/alerts.md).
    #[command(subcommand)]
    Webhooks(webhooks::WebhooksCommand),
    /// Workload identity: trusted external issuers and trust rules (docs/workload-identity.md).
    #[command(subcommand)]
    Federation(federation::FederationCommand),
    /// Manage API keys.
    #[command(subcommand, name = "api-key")]
    ApiKey(commands::ApiKeyCommand),
    /// Manage resource servers (APIs): audiences and the scopes they define.
    #[command(subcommand, name = "resource-server")]
    ResourceServer(commands::ResourceServerCommand),
    /// Manage OAuth clients.
    #[command(subcommand)]
    // Boxed: its create and update flags make it several times larger than any other command.
    Client(Box<commands::ClientCommand>),
    /// Sign the CLI in with your own user account through the browser (device sign-in); admin
    /// commands then use that sign-in when no admin token is given (docs/device-sign-in.md).
    Login(login::LoginArgs),
    /// Revoke the CLI's sign-in at the server and delete it.
    Logout(login::LogoutArgs),
    /// Manage a tenant's users (people who sign in): create, invite, list, reset passwords.
    #[command(subcommand)]
    Users(users::UsersCommand),
    /// Get an access token with the client-credentials grant and print it (a quick check), or
    /// exchange a workload's platform token for one (`token exchange`).
    Token(token::TokenArgs),
    /// Write an online, consistent backup of the SQLite database (run on the server's host).
    Backup(backup::BackupArgs),
    /// Export every tenant, client, key and revocation (digests and sealed keys only) to a
    /// versioned file, for `import` into a new database of either backend.
    Export(backup::ExportArgs),
    /// Import an export into an empty database (SQLite or PostgreSQL), all or nothing.
    Import(backup::ImportArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    #[command(flatten)]
    local: LocalArgs,
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Log format.
    #[arg(long, value_enum)]
    log_format: Option<LogFormatArg>,
    /// Log filter, e.g. `info` or `debug`.
    #[arg(long)]
    log_level: Option<String>,
}

#[derive(Debug, clap::Args)]
struct GatewayArgs {
    /// The gateway's TOML configuration (see docs/gateway.md).
    #[arg(long, env = "PORTCULLIS_GATEWAY_CONFIG")]
    config: PathBuf,
    /// Log format.
    #[arg(long, value_enum, default_value = "human")]
    log_format: LogFormatArg,
    /// Log filter, e.g. `info` or `audit=warn,info`.
    #[arg(long, default_value = "info")]
    log_level: String,
}

/// Options for commands that read the configuration and data directory directly.
#[derive(Debug, clap::Args)]
struct LocalArgs {
    /// TOML configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory (default ./portcullis-data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Output format (for `config check` and `keys rotate-kek`).
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate the configuration and print the effective values, secrets redacted.
    Check(LocalArgs),
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Re-encrypt every signing key under a newly generated KEK (run on the server's host).
    RotateKek(LocalArgs),
    /// List signing keys (from a running server).
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Start a signing-key rotation: the new key is published now and signs after the
    /// pre-publication window (signing.prepublish_secs).
    Rotate {
        #[command(flatten)]
        remote: Remote,
    },
    /// Revoke a signing key (compromise): removed from JWKS at once, its tokens revoked.
    Revoke {
        /// A key id is an RFC 7638 thumbprint in base64url, which may begin with `-`: taken as
        /// the id, not as an option.
        #[arg(allow_hyphen_values = true)]
        kid: String,
        #[command(flatten)]
        remote: Remote,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", report(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, each said once. Many errors put their cause in their
/// own message and also report it as `source()` (thiserror's `"could not read {path}:
/// {source}"`); `{:#}` would then print the OS error twice. A cause whose text is already in
/// the line is not repeated.
fn report(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn load_config(
    local: &LocalArgs,
    mut flags: portcullis_server::config::FlagOverrides,
) -> anyhow::Result<portcullis_server::config::Config> {
    flags.data_dir = local.data_dir.clone();
    Ok(portcullis_server::config::Config::load(
        local.config.as_deref(),
        &flags,
    )?)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    use portcullis_server::config::{FlagOverrides, LogFormat, LogOverrides};
    match cli.command {
        Command::Serve(args) => {
            let flags = FlagOverrides {
                listen: args.listen,
                data_dir: None,
                log: Some(LogOverrides {
                    format: args.log_format.map(|f| match f {
                        LogFormatArg::Human => LogFormat::Human,
                        LogFormatArg::Json => LogFormat::Json,
                    }),
                    level: args.log_level,
                }),
            };
            let config = load_config(&args.local, flags)?;
            portcullis_server::logging::init(&config.log);
            portcullis_server::serve::run(config).await
        }
        Command::Gateway(args) => {
            portcullis_server::logging::init(&portcullis_server::config::LogConfig {
                format: match args.log_format {
                    LogFormatArg::Human => LogFormat::Human,
                    LogFormatArg::Json => LogFormat::Json,
                },
                level: args.log_level,
            });
            Ok(portcullis_gateway::run(&args.config).await?)
        }
        Command::Config(ConfigCommand::Check(local)) => {
            let config = load_config(&local, FlagOverrides::default())?;
            config.database()?;
            match local.output {
                // Secrets serialise as "[redacted]" in either format.
                Output::Json => println!("{}", serde_json::to_string_pretty(&config)?),
                Output::Text => {
                    println!("# configuration is valid; effective values (secrets redacted):");
                    print!("{}", config.to_redacted_toml());
                }
            }
            Ok(())
        }
        Command::Keys(KeysCommand::RotateKek(local)) => {
            let config = load_config(&local, FlagOverrides::default())?;
            // With --output json, progress goes to stderr and stdout holds only the report.
            let report = match local.output {
                Output::Text => {
                    portcullis_server::serve::rotate_kek(&config, &mut std::io::stdout()).await?
                }
                Output::Json => {
                    let report =
                        portcullis_server::serve::rotate_kek(&config, &mut std::io::stderr())
                            .await?;
                    println!("{}", serde_json::to_string_pretty(&report)?);
                    report
                }
            };
            if report.leftover > 0 {
                anyhow::bail!("{} key(s) still sealed under an old KEK", report.leftover);
            }
            Ok(())
        }
        Command::Keys(KeysCommand::List { remote }) => commands::list_signing_keys(&remote).await,
        Command::Keys(KeysCommand::Rotate { remote }) => {
            commands::rotate_signing_key(&remote).await
        }
        Command::Keys(KeysCommand::Revoke { kid, remote }) => {
            commands::revoke_signing_key(&kid, &remote).await
        }
        Command::Tenant(cmd) => commands::tenant(cmd).await,
        Command::AdminToken(cmd) => commands::admin_token(cmd).await,
        Command::Audit(cmd) => commands::audit(cmd).await,
        Command::Alerts(cmd) => alerts::run(cmd).await,
        Command::Report(cmd) => lifecycle::report(cmd).await,
        Command::Webhooks(cmd) => webhooks::run(cmd).await,
        Command::Federation(cmd) => federation::run(cmd).await,
        Command::ApiKey(cmd) => commands::api_key(cmd).await,
        Command::ResourceServer(cmd) => commands::resource_server(cmd).await,
        Command::Client(cmd) => commands::client(*cmd).await,
        Command::Users(cmd) => users::users(cmd).await,
        Command::Login(args) => login::login(args).await,
        Command::Logout(args) => login::logout(args).await,
        Command::Token(args) => token::run(args).await,
        Command::Backup(args) => backup::backup(args).await,
        Command::Export(args) => backup::export(args).await,
        Command::Import(args) => backup::import(args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::report;

    /// clap's own consistency checks over every subcommand (a duplicate argument name, such as
    /// a subcommand's `--url` beside the server's, otherwise panics only when that one runs).
    /// CSV is the hygiene report's format alone: every other command refuses `--output csv`
    /// at parsing instead of printing text under a note.
    #[test]
    fn only_the_report_takes_csv() {
        use clap::Parser;
        let parse = |args: &[&str]| {
            super::Cli::try_parse_from(std::iter::once("portcullis").chain(args.iter().copied()))
        };
        assert!(parse(&["report", "hygiene", "--tenant", "acme", "--output", "csv"]).is_ok());
        assert!(parse(&["report", "hygiene", "--tenant", "acme", "--output", "table"]).is_ok());
        assert!(parse(&["tenant", "list", "--output", "json"]).is_ok());
        for other in [
            &["tenant", "list", "--output", "csv"][..],
            &["alerts", "list", "--output", "csv"],
            &["config", "check", "--output", "csv"],
        ] {
            let e = parse(other).expect_err("csv refused");
            assert_eq!(e.kind(), clap::error::ErrorKind::InvalidValue, "{other:?}");
        }
    }

    #[test]
    fn every_subcommand_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }

    #[test]
    fn webhooks_create_takes_the_endpoint_url_as_an_argument() {
        use clap::Parser;
        let cli = super::Cli::try_parse_from([
            "portcullis",
            "webhooks",
            "create",
            "--tenant",
            "acme",
            "https://hooks.example.com/in",
            "--url",
            "http://127.0.0.1:8080",
        ])
        .expect("parses");
        match cli.command {
            super::Command::Webhooks(super::webhooks::WebhooksCommand::Create {
                endpoint_url,
                tenant,
                ..
            }) => {
                assert_eq!(endpoint_url, "https://hooks.example.com/in");
                assert_eq!(tenant.as_deref(), Some("acme"));
            }
            _ => panic!("not webhooks create"),
        }
    }

    /// A kid beginning with `-` (one in 64 thumbprints) is revoked like any other, not refused
    /// as an unknown option: in a key compromise the operator must not have to know `--`.
    #[test]
    fn a_key_id_beginning_with_a_hyphen_is_an_id() {
        use clap::Parser;
        let kid = "-Q2CA1W3IBLCLAJtCfTCyDOdP3alK6gA5j0dzFvY9lQ";
        let cli = super::Cli::try_parse_from(["portcullis", "keys", "revoke", kid])
            .expect("a hyphen-led kid parses");
        match cli.command {
            super::Command::Keys(super::KeysCommand::Revoke { kid: got, .. }) => {
                assert_eq!(got, kid)
            }
            _ => panic!("not keys revoke"),
        }
    }

    #[test]
    fn a_cause_already_in_the_message_is_said_once() {
        let read = portcullis_server::config::ConfigError::Read {
            path: "/run/secrets/x".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        let os = std::io::Error::from(std::io::ErrorKind::NotFound).to_string();
        let line = report(&anyhow::Error::from(read));
        assert_eq!(line, format!("could not read /run/secrets/x: {os}"));
        // A cause not in the message is still shown, after it.
        let wrapped = anyhow::Error::from(std::io::Error::other("disk on fire")).context("backup");
        assert_eq!(report(&wrapped), "backup: disk on fire");
    }
}
