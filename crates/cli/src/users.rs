//! `portcullis users ...`: a tenant's users through the admin API (`docs/users.md`).
//!
//! An initial password is read from a file (`--password-file`, `-` for standard input), never
//! from the command line, where it would sit in the shell history and the process list. No
//! command prints a password hash or a one-time link: links go to the user's mailbox only.

use anyhow::Context;
use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use crate::commands::{fetch_and_print, list_and_print, seg, table};
use crate::Remote;

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user: with a password (active at once) or invited by mail.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: Option<String>,
        /// The address is known to be the user's.
        #[arg(long)]
        email_verified: bool,
        /// Display name (the `name` claim).
        #[arg(long)]
        name: Option<String>,
        /// File holding the initial password (`-` for standard input). Without it the user is
        /// invited by mail.
        #[arg(long)]
        password_file: Option<std::path::PathBuf>,
        /// Create an invited user without mailing the invitation yet.
        #[arg(long, conflicts_with = "password_file")]
        no_invite: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Mail a new invitation link to an invited user (the previous link stops working).
    Invite {
        #[arg(long)]
        tenant: String,
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// List users, oldest first (every page: the cursors are followed).
    List {
        #[arg(long)]
        tenant: String,
        /// invited, active or disabled.
        #[arg(long)]
        status: Option<String>,
        /// Usernames or emails starting with this, ignoring case.
        #[arg(long)]
        search: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show one user (never its password hash).
    Show {
        #[arg(long)]
        tenant: String,
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Change a user's username, email or display name.
    Update {
        #[arg(long)]
        tenant: String,
        id: String,
        #[arg(long)]
        username: Option<String>,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        email_verified: Option<bool>,
        /// Display name (the `name` claim); replaces the profile's name, keeps nothing else of
        /// it: use the admin API to edit other claims.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Disable a user: refused at sign-in until enabled.
    Disable {
        #[arg(long)]
        tenant: String,
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Enable a disabled user.
    Enable {
        #[arg(long)]
        tenant: String,
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Delete a user and its one-time links.
    Delete {
        #[arg(long)]
        tenant: String,
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// List a user's active sign-in sessions, oldest first.
    Sessions {
        #[arg(long)]
        tenant: String,
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// End one of a user's sessions: its tokens are refused everywhere within a second and its
    /// refresh tokens stop working.
    EndSession {
        #[arg(long)]
        tenant: String,
        id: String,
        sid: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Grant a user an admin role (replacing any it has): what its CLI sign-in (`portcullis
    /// login`) may do at the admin API (docs/device-sign-in.md).
    GrantRole {
        #[arg(long)]
        tenant: String,
        id: String,
        /// global_admin (system tenant only), tenant_admin, auditor, api_key_manager or service.
        #[arg(long)]
        role: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Remove a user's admin role: its CLI sign-in may do nothing at the admin API from now on.
    RevokeRole {
        #[arg(long)]
        tenant: String,
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Mail a password-reset link to whoever has this address (the answer is the same whether
    /// or not anyone does).
    ResetPassword {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        email: String,
        #[command(flatten)]
        remote: Remote,
    },
}

fn field<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("-")
}

fn user_text(v: &Value) -> String {
    let mut out = format!(
        "id: {}\ntenant: {}\nusername: {}\nemail: {}\nemail_verified: {}\nstatus: {}\nname: {}\nhas_password: {}\ncreated_at: {}\nlast_login_at: {}\n",
        field(v, "id"),
        field(v, "tenant"),
        field(v, "username"),
        field(v, "email"),
        v["email_verified"],
        field(v, "status"),
        v["profile"]["name"].as_str().unwrap_or("-"),
        v["has_password"],
        field(v, "created_at"),
        field(v, "last_login_at"),
    );
    if let Some(at) = v["invite_expires_at"].as_str() {
        out.push_str(&format!("invitation mailed; the link works until {at}\n"));
    }
    out
}

fn read_password(path: &std::path::Path) -> anyhow::Result<String> {
    let raw = if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .context("could not read the password from standard input")?;
        s
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("could not read {}", path.display()))?
    };
    Ok(raw.trim_end_matches(['\r', '\n']).to_owned())
}

pub async fn users(cmd: UsersCommand) -> anyhow::Result<()> {
    match cmd {
        UsersCommand::Create {
            tenant,
            username,
            email,
            email_verified,
            name,
            password_file,
            no_invite,
            remote,
        } => {
            let mut body = json!({
                "username": username,
                "email_verified": email_verified,
                "send_invite": !no_invite,
            });
            if let Some(e) = email {
                body["email"] = json!(e);
            }
            if let Some(n) = name {
                body["profile"] = json!({ "name": n });
            }
            if let Some(path) = password_file {
                body["password"] = json!(read_password(&path)?);
            }
            fetch_and_print(
                &remote,
                Method::POST,
                &format!("/tenants/{}/users", seg(&tenant)),
                &[],
                Some(body),
                user_text,
            )
            .await
        }
        UsersCommand::GrantRole {
            tenant,
            id,
            role,
            remote,
        } => {
            fetch_and_print(
                &remote,
                Method::PUT,
                &format!("/tenants/{}/users/{}/admin-role", seg(&tenant), seg(&id)),
                &[],
                Some(json!({ "role": role })),
                |v| {
                    format!(
                        "user {} of tenant {} is now {}\n",
                        field(v, "user_id"),
                        field(v, "tenant"),
                        field(v, "role")
                    )
                },
            )
            .await
        }
        UsersCommand::RevokeRole { tenant, id, remote } => {
            fetch_and_print(
                &remote,
                Method::DELETE,
                &format!("/tenants/{}/users/{}/admin-role", seg(&tenant), seg(&id)),
                &[],
                None,
                |_| "admin role removed\n".to_owned(),
            )
            .await
        }
        UsersCommand::Invite { tenant, id, remote } => {
            fetch_and_print(
                &remote,
                Method::POST,
                &format!("/tenants/{}/users/{}/invite", seg(&tenant), seg(&id)),
                &[],
                None,
                |v| {
                    format!(
                        "invitation mailed; the link works until {}\n",
                        field(v, "expires_at")
                    )
                },
            )
            .await
        }
        UsersCommand::List {
            tenant,
            status,
            search,
            remote,
        } => {
            let mut query = Vec::new();
            query.extend(status.map(|s| ("status", s)));
            query.extend(search.map(|q| ("q", q)));
            list_and_print(
                &remote,
                &format!("/tenants/{}/users", seg(&tenant)),
                &query,
                |v| table(v, &["id", "username", "email", "status", "last_login_at"]),
            )
            .await
        }
        UsersCommand::Show { tenant, id, remote } => {
            fetch_and_print(
                &remote,
                Method::GET,
                &format!("/tenants/{}/users/{}", seg(&tenant), seg(&id)),
                &[],
                None,
                user_text,
            )
            .await
        }
        UsersCommand::Update {
            tenant,
            id,
            username,
            email,
            email_verified,
            name,
            remote,
        } => {
            let mut body = json!({});
            if let Some(u) = username {
                body["username"] = json!(u);
            }
            if let Some(e) = email {
                body["email"] = json!(e);
            }
            if let Some(v) = email_verified {
                body["email_verified"] = json!(v);
            }
            if let Some(n) = name {
                body["profile"] = json!({ "name": n });
            }
            fetch_and_print(
                &remote,
                Method::PATCH,
                &format!("/tenants/{}/users/{}", seg(&tenant), seg(&id)),
                &[],
                Some(body),
                user_text,
            )
            .await
        }
        UsersCommand::Disable { tenant, id, remote } => {
            fetch_and_print(
                &remote,
                Method::POST,
                &format!("/tenants/{}/users/{}/disable", seg(&tenant), seg(&id)),
                &[],
                None,
                user_text,
            )
            .await
        }
        UsersCommand::Enable { tenant, id, remote } => {
            fetch_and_print(
                &remote,
                Method::POST,
                &format!("/tenants/{}/users/{}/enable", seg(&tenant), seg(&id)),
                &[],
                None,
                user_text,
            )
            .await
        }
        UsersCommand::Delete { tenant, id, remote } => {
            fetch_and_print(
                &remote,
                Method::DELETE,
                &format!("/tenants/{}/users/{}", seg(&tenant), seg(&id)),
                &[],
                None,
                |_| format!("deleted user {id}\n"),
            )
            .await
        }
        UsersCommand::Sessions { tenant, id, remote } => {
            fetch_and_print(
                &remote,
                Method::GET,
                &format!("/tenants/{}/users/{}/sessions", seg(&tenant), seg(&id)),
                &[],
                None,
                |v| {
                    table(
                        &v["items"],
                        &["sid", "auth_time", "last_seen_at", "absolute_expires_at"],
                    )
                },
            )
            .await
        }
        UsersCommand::EndSession {
            tenant,
            id,
            sid,
            remote,
        } => {
            fetch_and_print(
                &remote,
                Method::DELETE,
                &format!(
                    "/tenants/{}/users/{}/sessions/{}",
                    seg(&tenant),
                    seg(&id),
                    seg(&sid)
                ),
                &[],
                None,
                |_| format!("ended session {sid}\n"),
            )
            .await
        }
        UsersCommand::ResetPassword {
            tenant,
            email,
            remote,
        } => {
            fetch_and_print(
                &remote,
                Method::POST,
                &format!("/tenants/{}/users/reset-password", seg(&tenant)),
                &[],
                Some(json!({ "email": email })),
                |_| {
                    "accepted: if this address has an account, a reset link is on its way\n"
                        .to_owned()
                },
            )
            .await
        }
    }
}
