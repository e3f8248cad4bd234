//! Outgoing mail to users (invitations, password resets): over SMTP when `[smtp]` is configured,
//! otherwise into a development outbox, a directory of `.eml` files the operator reads
//! (`<data_dir>/outbox` by default; `docs/users.md`).
//!
//! SMTP goes through `lettre` with TLS by default (`tls = "starttls"`, or `"tls"` for implicit
//! TLS on port 465); plaintext SMTP is `insecure_plaintext`, for a relay on the same host. The
//! password comes from `password_file`, like every secret in the configuration.
//!
//! Outbox files hold live one-time links: they are created mode 0600 in a 0700 directory. This
//! module must never log a message body (it carries the link) and never reveal to its caller
//! more than "sent" or "not sent".

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use portcullis_core::secret::Secret;
use serde::{Deserialize, Serialize};

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which must succeed (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption at all: only for a relay on the same host or in tests.
    InsecurePlaintext,
}

/// The `[smtp]` section. Absent: mail goes to the development outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default)]
    pub tls: SmtpTls,
    /// The `From:` address, e.g. `Portcullis <no-reply@example.com>`.
    pub from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// File holding the SMTP password (trailing newline ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// Give up on one message after this many seconds.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_port() -> u16 {
    587
}

fn default_timeout() -> u64 {
    10
}

/// One message to one user.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    /// Plain text; may hold a one-time link, so it is never logged.
    pub body: Secret<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("mail configuration: {0}")]
    Config(String),
    #[error("the message could not be built: {0}")]
    Build(String),
    #[error("sending failed: {0}")]
    Send(String),
}

/// Where mail goes.
#[derive(Clone)]
pub struct Mailer(Arc<Backend>);

enum Backend {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
    },
    Outbox {
        dir: PathBuf,
        from: Mailbox,
    },
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.0 {
            Backend::Smtp { from, .. } => write!(f, "Mailer::Smtp(from {from})"),
            Backend::Outbox { dir, .. } => write!(f, "Mailer::Outbox({})", dir.display()),
        }
    }
}

impl Mailer {
    /// SMTP as configured. Reads the password file now, so a missing file fails at start.
    pub fn smtp(config: &SmtpConfig) -> Result<Self, MailError> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| MailError::Config(format!("smtp.from is not an address: {e}")))?;
        let mut builder = match config.tls {
            SmtpTls::InsecurePlaintext => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            }
            SmtpTls::Starttls | SmtpTls::Tls => {
                let params = TlsParameters::new(config.host.clone())
                    .map_err(|e| MailError::Config(format!("smtp TLS: {e}")))?;
                let tls = if config.tls == SmtpTls::Tls {
                    Tls::Wrapper(params)
                } else {
                    Tls::Required(params)
                };
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host).tls(tls)
            }
        }
        .port(config.port)
        .timeout(Some(Duration::from_secs(config.timeout_secs.max(1))));
        match (&config.username, &config.password_file) {
            (Some(user), Some(file)) => {
                let password = read_secret(file)?;
                builder =
                    builder.credentials(Credentials::new(user.clone(), password.expose().clone()));
            }
            (None, None) => {}
            _ => {
                return Err(MailError::Config(
                    "set both smtp.username and smtp.password_file, or neither".into(),
                ))
            }
        }
        Ok(Self(Arc::new(Backend::Smtp {
            transport: builder.build(),
            from,
        })))
    }

    /// The development outbox: every message becomes a file in `dir` (created 0700).
    pub fn outbox(dir: &Path) -> Result<Self, MailError> {
        create_private_dir(dir)
            .map_err(|e| MailError::Config(format!("outbox {}: {e}", dir.display())))?;
        let from = "Portcullis <portcullis@localhost>"
            .parse()
            .map_err(|e| MailError::Config(format!("{e}")))?;
        Ok(Self(Arc::new(Backend::Outbox {
            dir: dir.to_owned(),
            from,
        })))
    }

    /// The outbox directory, when mail goes there.
    pub fn outbox_dir(&self) -> Option<&Path> {
        match &*self.0 {
            Backend::Outbox { dir, .. } => Some(dir),
            Backend::Smtp { .. } => None,
        }
    }

    pub async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|e| MailError::Build(format!("recipient: {e}")))?;
        let from = match &*self.0 {
            Backend::Smtp { from, .. } | Backend::Outbox { from, .. } => from.clone(),
        };
        // Plain 7-bit when the text allows (links stay readable and clickable in any client),
        // quoted-printable otherwise.
        let body = Body::new_with_encoding(
            mail.body.expose().clone(),
            ContentTransferEncoding::SevenBit,
        )
        .or_else(|text| Body::new_with_encoding(text, ContentTransferEncoding::QuotedPrintable))
        .unwrap_or_else(Body::new);
        let message = Message::builder()
            .from(from)
            .to(to)
            .subject(mail.subject.clone())
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(body),
            )
            .map_err(|e| MailError::Build(e.to_string()))?;
        match &*self.0 {
            Backend::Smtp { transport, .. } => {
                transport
                    .send(message)
                    .await
                    .map_err(|e| MailError::Send(e.to_string()))?;
            }
            Backend::Outbox { dir, .. } => {
                let name = format!(
                    "{}-{}.eml",
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis()),
                    uuid::Uuid::new_v4().simple()
                );
                let path = dir.join(name);
                let bytes = message.formatted();
                tokio::task::spawn_blocking(move || write_private(&path, &bytes))
                    .await
                    .map_err(|e| MailError::Send(e.to_string()))?
                    .map_err(|e| MailError::Send(format!("outbox: {e}")))?;
            }
        }
        Ok(())
    }
}

fn read_secret(path: &Path) -> Result<Secret<String>, MailError> {
    let raw = std::fs::read_to_string(path)
        .map_err(|e| MailError::Config(format!("smtp.password_file {}: {e}", path.display())))?;
    Ok(Secret::new(raw.trim_end_matches(['\r', '\n']).to_owned()))
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    /// A minimal SMTP sink on 127.0.0.1:0: answers every command with success and keeps what
    /// follows DATA up to the lone dot. Enough for lettre's plaintext client, nothing more.
    async fn smtp_sink() -> (u16, tokio::sync::oneshot::Receiver<(Vec<String>, String)>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            write.write_all(b"220 sink ESMTP\r\n").await.expect("greet");
            let mut commands = Vec::new();
            let mut data = String::new();
            while let Ok(Some(line)) = lines.next_line().await {
                let upper = line.to_ascii_uppercase();
                commands.push(line.clone());
                let reply: &[u8] = if upper.starts_with("EHLO") {
                    b"250-sink\r\n250 AUTH PLAIN LOGIN\r\n"
                } else if upper.starts_with("AUTH") {
                    b"235 ok\r\n"
                } else if upper.starts_with("DATA") {
                    write.write_all(b"354 go on\r\n").await.expect("354");
                    while let Ok(Some(l)) = lines.next_line().await {
                        if l == "." {
                            break;
                        }
                        data.push_str(&l);
                        data.push('\n');
                    }
                    b"250 queued\r\n"
                } else if upper.starts_with("QUIT") {
                    write.write_all(b"221 bye\r\n").await.expect("221");
                    break;
                } else {
                    b"250 ok\r\n"
                };
                write.write_all(reply).await.expect("reply");
            }
            let _ = tx.send((commands, data));
        });
        (port, rx)
    }

    fn mail() -> Mail {
        Mail {
            to: "alice@example.com".into(),
            subject: "Reset your password".into(),
            body: Secret::new("Open https://id.example/reset#pcl_ut_abc\n".into()),
        }
    }

    #[tokio::test]
    async fn smtp_delivers_to_a_local_sink_with_credentials_from_a_file() {
        let (port, got) = smtp_sink().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let password = dir.path().join("smtp-password");
        std::fs::write(&password, "s3cret\n").expect("write");
        let mailer = Mailer::smtp(&SmtpConfig {
            host: "127.0.0.1".into(),
            port,
            tls: SmtpTls::InsecurePlaintext,
            from: "Portcullis <no-reply@example.com>".into(),
            username: Some("mailer".into()),
            password_file: Some(password),
            timeout_secs: 5,
        })
        .expect("mailer");
        assert!(!format!("{mailer:?}").contains("s3cret"));
        mailer.send(&mail()).await.expect("sent");
        drop(mailer);
        let (commands, data) = tokio::time::timeout(Duration::from_secs(10), got)
            .await
            .expect("in time")
            .expect("sink finished");
        assert!(
            commands
                .iter()
                .any(|c| c.starts_with("MAIL FROM:<no-reply@example.com>")),
            "{commands:?}"
        );
        assert!(
            commands
                .iter()
                .any(|c| c.starts_with("RCPT TO:<alice@example.com>")),
            "{commands:?}"
        );
        assert!(
            commands.iter().any(|c| c.starts_with("AUTH")),
            "{commands:?}"
        );
        assert!(data.contains("Subject: Reset your password"), "{data}");
        assert!(
            data.contains("https://id.example/reset#pcl_ut_abc"),
            "{data}"
        );
    }

    #[tokio::test]
    async fn an_unreachable_smtp_server_is_an_error_not_a_hang() {
        // A port nothing listens on (bound, then closed).
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let mailer = Mailer::smtp(&SmtpConfig {
            host: "127.0.0.1".into(),
            port,
            tls: SmtpTls::InsecurePlaintext,
            from: "no-reply@example.com".into(),
            username: None,
            password_file: None,
            timeout_secs: 2,
        })
        .expect("mailer");
        assert!(matches!(
            mailer.send(&mail()).await,
            Err(MailError::Send(_))
        ));
    }

    #[test]
    fn bad_smtp_configuration_is_refused() {
        let base = SmtpConfig {
            host: "127.0.0.1".into(),
            port: 25,
            tls: SmtpTls::Starttls,
            from: "no-reply@example.com".into(),
            username: Some("u".into()),
            password_file: None,
            timeout_secs: 5,
        };
        assert!(matches!(Mailer::smtp(&base), Err(MailError::Config(_))));
        let missing = SmtpConfig {
            password_file: Some("/nonexistent/portcullis-smtp".into()),
            ..base.clone()
        };
        assert!(matches!(Mailer::smtp(&missing), Err(MailError::Config(_))));
        let bad_from = SmtpConfig {
            from: "not an address".into(),
            username: None,
            ..base
        };
        assert!(matches!(Mailer::smtp(&bad_from), Err(MailError::Config(_))));
    }

    #[tokio::test]
    async fn without_smtp_mail_lands_in_a_private_outbox() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let outbox = dir.path().join("outbox");
        let mailer = Mailer::outbox(&outbox).expect("outbox");
        assert_eq!(mailer.outbox_dir(), Some(outbox.as_path()));
        mailer.send(&mail()).await.expect("sent");
        let files: Vec<_> = std::fs::read_dir(&outbox)
            .expect("read")
            .map(|e| e.expect("entry").path())
            .collect();
        assert_eq!(files.len(), 1);
        let meta = std::fs::metadata(&files[0]).expect("meta");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let dir_mode = std::fs::metadata(&outbox)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let text = std::fs::read_to_string(&files[0]).expect("read");
        assert!(text.contains("To: alice@example.com"), "{text}");
        assert!(text.contains("pcl_ut_abc"), "{text}");
        assert!(matches!(
            mailer
                .send(&Mail {
                    to: "not an address".into(),
                    ..mail()
                })
                .await,
            Err(MailError::Build(_))
        ));
    }
}
