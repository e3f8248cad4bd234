//! `portcullis serve`: the start-up sequence and graceful shutdown.
//!
//! 1. Bind the listen address (fail fast on a port in use).
//! 2. Prepare the data directory (created 0700; must be writable).
//! 3. Open the database and apply migrations (refuse a newer schema).
//! 4. Load the KEK, or create one on a fresh data directory; never over existing keys.
//! 5. Open the signing keys, creating the first active key if needed.
//! 6. Ensure a global admin exists (bootstrap token file) and the built-in CLI client.
//! 7. Start the embedded gateway if `[gateway]` names one (`gateway.rs`), and the metrics
//!    listener if `[metrics] listen` is set (`metrics.rs`; bound in step 1, fail fast).
//! 8. Serve (over TLS with `[tls]`, `tls_listener.rs`; SIGHUP reloads its certificate) until
//!    SIGTERM/SIGINT, drain in-flight requests, flush the audit log.
//!
//! Steps 5 and 6, and everything the HTTP surfaces need, are [`assemble`]: the one function that
//! builds the app, for `serve` and for tests alike. This module must never hold a rule about
//! tokens, keys or credentials; it only orders and supervises.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use portcullis_core::audit::{Action, Actor, Outcome};
use portcullis_core::tenant::TenantId;
use portcullis_core::time::Clock;
use portcullis_store::{PgStore, SqliteStore, Store};

use crate::config::{Config, DatabaseLocation};
use portcullis_service::audit::{self, EventDraft, RequestOrigin};
use portcullis_service::kek::{Kek, Keyring};
use portcullis_service::state::AppState;
use portcullis_verify::SystemClock;

pub async fn run(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("could not listen on {}", config.listen))?;
    let metrics_listener = match config.metrics.listen {
        Some(at) => Some(
            tokio::net::TcpListener::bind(at)
                .await
                .with_context(|| format!("could not listen on {at} for metrics"))?,
        ),
        None => None,
    };
    // The certificate and key load before anything is created: a bad pair fails fast.
    let tls = match &config.tls {
        None => None,
        Some(t) => Some(
            match t.client_certificates {
                crate::config::ClientCertificates::Off => {
                    portcullis_gateway::tls::Tls::new(&t.section())
                }
                crate::config::ClientCertificates::Request => {
                    portcullis_gateway::tls::Tls::with_deferred_client_certificates(&t.section())
                }
            }
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        ),
    };
    // Before anything is created: a node that cannot present the one issuer must not start.
    let addr = listener.local_addr()?;
    let issuer = config.issuer_at(addr)?;
    prepare_data_dir(&config.data_dir)?;
    let store = open_store(&config).await?;
    let keyring = load_or_create_keyring(&config, store.as_ref()).await?;
    // Only for an embedded gateway: without one, no nonce key is derived or file read.
    let gateway_dpop = match config.gateway.config {
        Some(_) => crate::gateway::dpop_config(&config.gateway, &keyring)?,
        None => Default::default(),
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let Assembled {
        state,
        router: app,
        verifier,
        tasks,
        metrics,
    } = assemble(
        &config,
        issuer.clone(),
        store.clone(),
        keyring,
        Hooks::new(clock.clone()),
    )
    .await?;
    let feed = state.revocations.clone();
    let embedded_gateway = crate::gateway::start(
        &config,
        crate::gateway::Parts {
            issuer,
            store: store.clone(),
            clock,
            api_keys: verifier.clone(),
            router: app.clone(),
            audit: state.audit.clone(),
            dpop: gateway_dpop,
        },
    )
    .await?;
    let metrics_task = match metrics_listener {
        Some(l) => {
            tracing::info!(addr = %l.local_addr()?, "metrics listening");
            Some(crate::metrics::spawn(l, metrics))
        }
        None => None,
    };
    tracing::info!(
        %addr,
        backend = store.backend(),
        trusted_proxies = ?Vec::<String>::from(config.http.trusted_proxies.clone()),
        forwarded_header = config.http.forwarded_header.name(),
        "listening"
    );

    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown_signal().await;
        tracing::info!("shutting down: draining in-flight requests");
        // Open revocation streams never finish on their own; their readers resume elsewhere.
        feed.shutdown();
        let _ = signalled_tx.send(());
    };
    let mut reload_task = None;
    let server: std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<()>> + Send>> =
        match tls {
            None => Box::pin(std::future::IntoFuture::into_future(
                axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(shutdown),
            )),
            Some(tls) => {
                let tls = Arc::new(tls);
                reload_task = Some(tokio::spawn(reload_on_sighup(tls.clone())));
                let listener = crate::tls_listener::TlsListener::new(listener, &tls)?;
                let app = app.layer(axum::middleware::from_fn(
                    crate::tls_listener::tls_request_extensions,
                ));
                Box::pin(std::future::IntoFuture::into_future(
                    axum::serve(
                        listener,
                        app.into_make_service_with_connect_info::<crate::tls_listener::TlsPeer>(),
                    )
                    .with_graceful_shutdown(shutdown),
                ))
            }
        };
    let grace = Duration::from_secs(config.http.shutdown_grace_secs);
    let mut server = server;
    tokio::select! {
        result = &mut server => result.context("server failed")?,
        _ = async {
            let _ = signalled_rx.await;
            tokio::time::sleep(grace).await;
        } => tracing::warn!(grace_secs = grace.as_secs(), "grace period over; closing remaining connections"),
    }
    drop(embedded_gateway);
    if let Some(t) = reload_task {
        t.abort();
    }
    if let Some(t) = metrics_task {
        t.abort();
    }
    tasks.shutdown(&verifier).await;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// The app `serve` runs, built by [`assemble`]: the shared state, the router of every HTTP
/// surface, the API key verifier (the embedded gateway uses it too) and the background tasks.
#[derive(Debug)]
pub struct Assembled {
    pub state: AppState,
    pub router: axum::Router,
    pub verifier: Arc<portcullis_service::api_keys::ApiKeyVerifier>,
    pub tasks: BackgroundTasks,
    /// What the metrics listener scrapes.
    pub metrics: Arc<crate::metrics::NodeMetrics>,
}

/// The background tasks of one node, stopped together by [`BackgroundTasks::shutdown`]: the
/// audit writer, the API key usage flusher and revocation follower, the signing-key task and the
/// sign-in state pruner.
#[derive(Debug)]
pub struct BackgroundTasks {
    audit_writer: audit::AuditWriter,
    /// The detectors and the alert writer; `None` with `detect.enabled = false`.
    detection: Option<portcullis_service::detect::Detection>,
    usage_flusher: tokio::task::JoinHandle<()>,
    key_follower: Option<tokio::task::JoinHandle<()>>,
    key_task: tokio::task::JoinHandle<()>,
    sign_in_pruner: tokio::task::JoinHandle<()>,
    /// Applies lifetime policies in mode `disable` every hour.
    lifetime_sweeper: tokio::task::JoinHandle<()>,
    /// Sends queued webhook deliveries; `None` with `webhooks.enabled = false`.
    webhook_dispatcher: Option<tokio::task::JoinHandle<()>>,
    backchannel_logout: tokio::task::JoinHandle<()>,
    /// Signs audit chain checkpoints and runs the verified audit prune.
    audit_chain: tokio::task::JoinHandle<()>,
}

impl BackgroundTasks {
    /// Stops the tasks, records the last API key uses and drains the audit queue.
    pub async fn shutdown(self, verifier: &portcullis_service::api_keys::ApiKeyVerifier) {
        self.usage_flusher.abort();
        if let Some(follower) = &self.key_follower {
            follower.abort();
        }
        if let Err(e) = verifier.flush_usage().await {
            tracing::warn!(error = %e, "could not record the last api key uses at shutdown");
        }
        self.key_task.abort();
        self.sign_in_pruner.abort();
        self.lifetime_sweeper.abort();
        if let Some(d) = &self.webhook_dispatcher {
            // An attempt cut short keeps its lease until it expires; then any node retries it.
            d.abort();
        }
        self.backchannel_logout.abort();
        self.audit_chain.abort();
        if let Some(d) = &self.detection {
            d.shutdown();
        }
        self.audit_writer.shutdown().await;
    }
}

/// What [`assemble`] takes besides the configuration, the store and the keyring: the clock, and
/// the few things a test harness changes. `serve` uses [`Hooks::new`] with the system clock.
#[derive(Debug, Clone)]
pub struct Hooks {
    /// Where every subsystem reads the time (tests pass a manual clock).
    pub clock: Arc<dyn Clock>,
    /// Whether the token endpoint starts with the active key's signer (always, for `serve`).
    /// Off, it starts without one, as a node whose signer was lost, and the rotation step at
    /// start is skipped (it would install it): readiness tests then install one themselves.
    pub signer_at_start: bool,
    /// Whether the API key verifier follows the revocation log (always, for `serve`). Off, its
    /// cache answers alone, as tests of that cache need: a follower that cannot read the log
    /// (storage closed by the test) rightly drops every cached key.
    pub follow_revocations: bool,
}

impl Hooks {
    /// What `serve` runs with: this clock, everything else as in production.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            signer_at_start: true,
            follow_revocations: true,
        }
    }
}

/// Builds the app from the configuration on an opened store and keyring: signing keys (the
/// first one created if needed), the audit writer, the bootstrap global admin, API key
/// verification, the OAuth state with rotation, the revocation feed, the background tasks and
/// the router. `serve` and the test harnesses build the app through this one function; what a
/// harness changes is in [`Hooks`].
pub async fn assemble(
    config: &Config,
    issuer: String,
    store: Arc<dyn Store>,
    keyring: Keyring,
    hooks: Hooks,
) -> anyhow::Result<Assembled> {
    let Hooks {
        clock,
        signer_at_start,
        follow_revocations,
    } = hooks;
    let (keys, created) = portcullis_service::keys::load_or_create_active(
        store.as_ref(),
        &keyring,
        &clock,
        config.signing.algorithm,
    )
    .await
    .context("could not load signing keys")?;
    let (audit, audit_writer) = audit::spawn(store.clone(), clock.clone(), &config.audit);
    let webhooks = Arc::new(portcullis_service::webhooks::Webhooks::new(
        store.clone(),
        clock.clone(),
        keyring.clone(),
        issuer.clone(),
        config.webhooks.clone(),
    ));
    let webhook_dispatcher = if config.webhooks.enabled {
        Some(
            webhooks
                .spawn_dispatcher()
                .context("could not start the webhook dispatcher")?,
        )
    } else {
        None
    };
    // Subscribed before the first event below, so the detectors see everything recorded.
    let detection = config.detect.enabled.then(|| {
        portcullis_service::detect::spawn(
            &audit,
            store.clone(),
            clock.clone(),
            config.detect.clone(),
            Some(webhooks.clone()),
        )
    });
    for kid in created {
        tracing::info!(kid, "generated signing key");
        audit.record(
            EventDraft {
                tenant: TenantId::system(),
                actor: Actor::system(),
                credential_id: None,
                action: Action::SigningKeyGenerate,
                outcome: Outcome::Success,
                reason: None,
                target: Some(kid),
            },
            &RequestOrigin::default(),
        );
    }
    if let Some(path) = crate::bootstrap::ensure_global_admin(
        store.as_ref(),
        clock.as_ref(),
        &audit,
        &config.data_dir,
    )
    .await?
    {
        tracing::warn!(
            path = %path.display(),
            "created the bootstrap global-admin token; read it from this file, store it safely, and delete the file"
        );
    }

    let created =
        portcullis_service::tokens::cli_session::ensure_clients(store.as_ref(), clock.as_ref())
            .await?;
    if created > 0 {
        tracing::info!(
            tenants = created,
            "created the built-in clients for `portcullis login` (portcullis-cli, portcullis-cli-<tenant>)"
        );
    }

    let verifier = Arc::new(portcullis_service::api_keys::ApiKeyVerifier::new(
        store.clone(),
        clock.clone(),
        audit.clone(),
        portcullis_service::api_keys::VerifierSettings {
            environment: portcullis_core::credential::Environment::parse(
                &config.api_keys.environment,
            )
            .map_err(|_| anyhow::anyhow!("api_keys.environment is not a valid environment"))?,
            cache_capacity: config.api_keys.cache_capacity,
            cache_ttl: Duration::from_millis(config.api_keys.cache_ttl_ms),
        },
    ));
    let usage_flusher = verifier.spawn_usage_flusher(Duration::from_millis(
        config.api_keys.usage_flush_interval_ms,
    ));
    let key_follower = follow_revocations.then(|| verifier.spawn_revocation_follower());
    let lifetime_sweeper = portcullis_service::lifetime_enforcement::spawn_sweeper(
        portcullis_service::lifetime_enforcement::Enforcer {
            store: store.clone(),
            audit: audit.clone(),
            verifier: verifier.clone(),
            clock: clock.clone(),
        },
        Duration::from_secs(config.api_keys.lifetime_sweep_interval_secs),
    );
    let environment = portcullis_core::credential::Environment::parse(&config.api_keys.environment)
        .map_err(|_| anyhow::anyhow!("api_keys.environment is not a valid environment"))?;
    let sign_in = Arc::new(portcullis_service::sign_in::SignIn::new(
        store.clone(),
        clock.clone(),
        audit.clone(),
        config.sign_in.config(
            Duration::from_secs(config.oauth.max_access_token_ttl_secs),
            environment,
        ),
        &keyring,
    ));
    let sign_in_pruner = sign_in
        .clone()
        .spawn_pruner(Duration::from_secs(config.sign_in.prune_interval_secs));
    let feed = Arc::new(portcullis_service::revocations::Feed::new(
        Duration::from_millis(config.revocations.heartbeat_interval_ms),
    ));
    let no_keys = portcullis_service::keys::KeySet {
        keys: vec![],
        primary: config.signing.algorithm,
    };
    let signer_keys = if signer_at_start { &keys } else { &no_keys };
    let login_keys = portcullis_service::login::LoginKeys::from_keyring(&keyring);
    let oauth = portcullis_service::oauth::OAuthState::new(issuer, &config.oauth, signer_keys)?
        .with_federation(&config.federation)
        .with_client_certificates(
            config.tls.as_ref().is_some_and(|t| {
                t.client_certificates == crate::config::ClientCertificates::Request
            }) || config.http.client_certificate_header.is_some(),
        )
        .with_rotation(portcullis_service::rotation::Rotation {
            keyring,
            algorithm: config.signing.algorithm,
            prepublish: Duration::from_secs(config.signing.prepublish_secs),
            interval: Duration::from_secs(config.signing.rotation_interval_secs),
        });
    let mailer = match &config.smtp {
        Some(smtp) => portcullis_service::mail::Mailer::smtp(smtp)?,
        None => {
            let outbox = config.data_dir.join("outbox");
            tracing::info!(outbox = %outbox.display(), "no [smtp] section: mail to users goes to the development outbox");
            portcullis_service::mail::Mailer::outbox(&outbox)?
        }
    };
    let users = portcullis_service::users::Users::new(
        &config.users,
        config.passwords,
        mailer,
        oauth.issuer.clone(),
    )
    .context("could not start the user accounts (password hashing, mail)")?;
    let oauth = Arc::new(oauth);
    let logout = Arc::new(portcullis_service::logout::Backchannel::new(
        store.clone(),
        clock.clone(),
        audit.clone(),
        oauth.clone(),
        config.logout.clone(),
        sign_in.backchannel_wakeup(),
    )?);
    let backchannel_logout = logout.clone().spawn();
    let login = Arc::new(portcullis_service::login::Login::new(
        store.clone(),
        clock.clone(),
        audit.clone(),
        users.hasher.clone(),
        &config.login,
        login_keys,
    ));
    let state = AppState {
        login,
        users,
        sign_in,
        logout,
        store: store.clone(),
        clock,
        audit,
        keys: Arc::new(keys),
        api_keys: Arc::new(portcullis_service::api_keys::ApiKeys {
            verifier: verifier.clone(),
            leak_report_key: config.api_keys.leak_report_key()?,
            leak_report_ecdsa_key: config.api_keys.leak_report_ecdsa_key()?,
        }),
        oauth,
        revocations: feed,
        webhooks,
    };
    // Finish any rotation a crash interrupted before serving, then keep checking.
    if signer_at_start {
        if let Err(e) = portcullis_service::rotation::tick(&state.oauth_service()).await {
            tracing::error!(error = %e, "signing-key rotation step failed at start; the key task retries");
        }
    }
    let key_task = tokio::spawn(portcullis_service::rotation::run(
        state.oauth_service(),
        Duration::from_secs(config.signing.check_interval_secs),
    ));
    let audit_chain = portcullis_service::audit_chain::spawn(
        store.clone(),
        state.clock.clone(),
        state.oauth.clone(),
        Duration::from_secs(config.audit.checkpoint_interval_secs),
        (config.audit.retention_days > 0)
            .then(|| Duration::from_secs(config.audit.retention_days.saturating_mul(86_400))),
    );
    let http_metrics = Arc::new(portcullis_http::metrics::HttpMetrics::new());
    let router = portcullis_http::app::router_with_metrics(
        state.clone(),
        &config.http,
        http_metrics.clone(),
    );
    let metrics = Arc::new(crate::metrics::NodeMetrics {
        http: http_metrics,
        state: state.clone(),
        verifier: verifier.clone(),
        detect: detection.as_ref().map(|d| d.metrics.clone()),
    });
    Ok(Assembled {
        state,
        router,
        metrics,
        verifier,
        tasks: BackgroundTasks {
            audit_writer,
            detection,
            usage_flusher,
            key_follower,
            key_task,
            sign_in_pruner,
            lifetime_sweeper,
            webhook_dispatcher,
            backchannel_logout,
            audit_chain,
        },
    })
}

/// Re-reads the TLS certificate and key on SIGHUP: new handshakes get the new pair, open
/// connections keep theirs; a pair that does not load leaves the old one in use.
async fn reload_on_sighup(tls: Arc<portcullis_gateway::tls::Tls>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; the TLS certificate will not reload");
            return;
        };
        while hup.recv().await.is_some() {
            match tls.reload() {
                Ok(()) => tracing::info!(
                    certificate_sha256 = tls.certs().fingerprint().as_deref().unwrap_or(""),
                    "TLS certificate reloaded"
                ),
                Err(e) => {
                    tracing::error!(error = %e, "TLS certificate reload refused; the previous certificate stays in use")
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tls;
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; only SIGINT will stop the server");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Creates the data directory (0700) if missing and checks it is writable.
pub fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("could not create data directory {}", dir.display()))?;
    } else if !dir.is_dir() {
        bail!(
            "data directory {} exists and is not a directory",
            dir.display()
        );
    }
    let probe = dir.join(format!(".write-probe-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .with_context(|| format!("data directory {} is not writable", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let poll = Duration::from_millis(config.revocations.poll_interval_ms);
    let sqlite = |store: SqliteStore| {
        store.set_revocation_poll_interval(poll);
        Arc::new(store) as Arc<dyn Store>
    };
    let store: Arc<dyn Store> = match config.database()? {
        DatabaseLocation::SqliteFile(path) => sqlite(
            SqliteStore::open(&path)
                .await
                .with_context(|| format!("could not open database {}", path.display()))?,
        ),
        DatabaseLocation::SqliteUrl(url) => sqlite(
            SqliteStore::open_url(url.expose())
                .await
                .context("could not open the SQLite database")?,
        ),
        DatabaseLocation::Postgres(url) => {
            let store = PgStore::connect(url.expose())
                .await
                .context("could not open the PostgreSQL database")?;
            store.set_revocation_poll_interval(poll);
            Arc::new(store)
        }
    };
    Ok(store)
}

/// Reads the KEK file, or creates one in the data directory on a fresh installation.
pub async fn load_or_create_keyring(config: &Config, store: &dyn Store) -> anyhow::Result<Keyring> {
    let (path, explicit) = config.kek_path();
    if path.exists() {
        return Ok(Keyring::read(&path)?);
    }
    if explicit {
        bail!(
            "the configured KEK file {} does not exist (kek_file / PORTCULLIS_KEK_FILE)",
            path.display()
        );
    }
    if !store.list_signing_keys().await?.is_empty() {
        bail!(
            "the database holds encrypted signing keys but the KEK file {} is missing; restore \
             it or set kek_file. Portcullis will not generate a new KEK over existing keys",
            path.display()
        );
    }
    let ring = Keyring::new(Kek::generate()?);
    ring.write(&path)?;
    tracing::warn!(
        path = %path.display(),
        kek_id = ring.primary().id(),
        "generated a key-encryption key in the data directory; production should supply its own \
         (kek_file / PORTCULLIS_KEK_FILE), stored apart from the database"
    );
    portcullis_service::fault::crash_point("after-kek-created");
    Ok(ring)
}

/// `portcullis keys rotate-kek`: seal every signing key under a new KEK, keeping the old KEK in
/// the keyring until no row needs it. Safe to interrupt and re-run.
pub async fn rotate_kek(
    config: &Config,
    progress: &mut dyn std::io::Write,
) -> anyhow::Result<RotationReport> {
    let store = open_store(config).await?;
    let (path, _) = config.kek_path();
    let mut ring = Keyring::read(&path)?;
    let old_ids: Vec<String> = ring.ids().iter().map(|s| s.to_string()).collect();
    ring.push_primary(Kek::generate()?);
    let new_id = ring.primary().id().to_owned();
    // The keyring holding both is on disk before any row changes, so a crash leaves every row
    // openable.
    ring.write(&path)?;
    writeln!(progress, "new KEK {new_id} written to {}", path.display())?;
    let resealed_webhooks = reseal_webhook_secrets(store.as_ref(), &ring, &new_id).await?;
    writeln!(
        progress,
        "re-encrypted {resealed_webhooks} webhook secret(s)"
    )?;
    let rows = store.list_signing_keys().await?;
    let total = rows.len();
    let mut resealed = 0;
    for (i, row) in rows.iter().enumerate() {
        if row.kek_id == new_id {
            continue;
        }
        let aad = portcullis_service::keys::envelope_aad(&row.kid, row.algorithm);
        let plain = ring
            .open(&row.kek_id, &row.sealed_private_key, &aad)
            .with_context(|| format!("could not open signing key {}", row.kid))?;
        let (kek_id, sealed) = ring.seal(plain.expose(), &aad)?;
        if store
            .reseal_signing_key(&row.kid, &row.kek_id, &kek_id, &sealed)
            .await?
        {
            resealed += 1;
        }
        writeln!(progress, "re-encrypted {}/{total}: {}", i + 1, row.kid)?;
    }
    let leftover = store
        .list_signing_keys()
        .await?
        .iter()
        .filter(|k| k.kek_id != new_id)
        .count()
        + store
            .all_webhook_endpoints()
            .await?
            .iter()
            .filter(|e| e.kek_id != new_id)
            .count();
    if leftover == 0 {
        ring.retain_primary_only();
        ring.write(&path)?;
        writeln!(
            progress,
            "done: {resealed} key(s) re-encrypted; old KEK(s) {} removed",
            old_ids.join(", ")
        )?;
    } else {
        writeln!(
            progress,
            "{leftover} key(s) still use an old KEK (created while rotating?); the old KEK stays in {}: run rotate-kek again",
            path.display()
        )?;
    }
    store.close().await;
    Ok(RotationReport {
        new_kek_id: new_id,
        resealed,
        leftover,
    })
}

/// Re-seals every webhook secret not sealed by `new_kek` (compare-and-swap per row).
async fn reseal_webhook_secrets(
    store: &dyn Store,
    ring: &Keyring,
    new_kek: &str,
) -> anyhow::Result<usize> {
    let mut done = 0;
    for e in store.all_webhook_endpoints().await? {
        if e.kek_id == new_kek {
            continue;
        }
        let aad = portcullis_service::webhooks::secret_aad(&e.id);
        let plain = ring
            .open(&e.kek_id, &e.sealed_secret, &aad)
            .with_context(|| format!("could not open the secret of webhook {}", e.id))?;
        let (kek_id, sealed) = ring.seal(plain.expose(), &aad)?;
        if store
            .reseal_webhook_secret(&e.id, &e.kek_id, &kek_id, &sealed)
            .await?
        {
            done += 1;
        }
    }
    Ok(done)
}

#[derive(Debug, serde::Serialize)]
pub struct RotationReport {
    pub new_kek_id: String,
    pub resealed: usize,
    pub leftover: usize,
}
