//! Conformance cases of [`UserStore`]: users and one-time tokens, each run against SQLite and
//! (when `PORTCULLIS_TEST_DATABASE_URL` is set) PostgreSQL, with the suite's fixtures.

use std::sync::Arc;

use portcullis_core::tenant::TenantId;
use portcullis_core::time::Timestamp;
use portcullis_store::*;

macro_rules! user_cases {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                crate::conformance::with_sqlite(super::$name).await;
            }

            #[tokio::test]
            async fn postgres() {
                crate::conformance::with_postgres(stringify!($name), super::$name).await;
            }
        }
    )*};
}

user_cases!(
    users_round_trip_and_are_found_by_normalised_name_and_email,
    usernames_and_emails_are_unique_per_tenant_only,
    updates_conflict_with_another_users_names,
    status_password_and_login_changes_are_tenant_scoped,
    listing_filters_and_pages_by_cursor_stably_under_inserts,
    deleting_a_user_removes_its_tokens,
    one_time_tokens_are_single_use_purpose_bound_and_expire,
    a_new_token_replaces_the_unused_one_of_the_same_purpose,
    concurrent_consumers_of_one_token_get_it_once,
    a_user_of_an_unknown_tenant_is_refused,
);

fn tid(s: &str) -> TenantId {
    TenantId::parse(s).expect("valid tenant id")
}

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn uid(s: &str) -> UserId {
    UserId::parse(s).expect("valid user id")
}

/// A user `id` of `tenant`, active, created at 10.
pub(crate) fn user(id: &str, tenant: &str, username: &str, email: Option<&str>) -> UserRecord {
    UserRecord {
        id: uid(id),
        tenant: tid(tenant),
        username: Username::parse(username).expect("valid username"),
        email: email.map(|e| Email::parse(e).expect("valid email")),
        email_verified: false,
        status: UserStatus::Active,
        profile: UserProfile::default(),
        password_hash: None,
        password_changed_at: None,
        created_at: at(10),
        updated_at: at(10),
        last_login_at: None,
    }
}

/// A token with digest `[n; 32]` for `user`, created at 10, expiring at `expires`.
pub(crate) fn token(
    n: u8,
    tenant: &str,
    user: &str,
    purpose: TokenPurpose,
    expires: i64,
) -> UserTokenRecord {
    UserTokenRecord {
        digest: vec![n; 32],
        tenant: tid(tenant),
        user_id: uid(user),
        purpose,
        created_at: at(10),
        expires_at: at(expires),
        used_at: None,
    }
}

async fn tenants(s: &Arc<dyn Store>) {
    for t in ["acme", "globex"] {
        s.create_tenant(
            &NewTenant {
                id: tid(t),
                display_name: t.into(),
            },
            at(1),
        )
        .await
        .expect("tenant");
    }
}

const A: &str = "usr_01aaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "usr_01bbbbbbbbbbbbbbbbbbbbbbbb";
const C: &str = "usr_01cccccccccccccccccccccccc";

async fn users_round_trip_and_are_found_by_normalised_name_and_email(s: Arc<dyn Store>) {
    tenants(&s).await;
    let mut alice = user(A, "acme", "Alice", Some("Alice@Example.com"));
    alice.profile = serde_json::from_str(r#"{"name":"Alice","picture":"https://x.example/a.png"}"#)
        .expect("profile");
    alice.status = UserStatus::Invited;
    s.create_user(&alice).await.expect("create");
    assert_eq!(
        s.get_user(&tid("acme"), &uid(A)).await.expect("get"),
        Some(alice.clone())
    );
    // Another tenant cannot read it by id.
    assert_eq!(
        s.get_user(&tid("globex"), &uid(A)).await.expect("get"),
        None
    );
    let by_name = s
        .find_user_by_username(&tid("acme"), &Username::parse("ALICE").expect("valid"))
        .await
        .expect("find");
    assert_eq!(by_name.map(|u| u.id), Some(uid(A)));
    let by_email = s
        .find_user_by_email(
            &tid("acme"),
            &Email::parse("alice@example.COM").expect("valid"),
        )
        .await
        .expect("find");
    assert_eq!(by_email.map(|u| u.id), Some(uid(A)));
    assert_eq!(
        s.find_user_by_username(&tid("globex"), &Username::parse("alice").expect("valid"))
            .await
            .expect("find"),
        None
    );
    assert_eq!(
        s.find_user_by_email(
            &tid("acme"),
            &Email::parse("nobody@example.com").expect("valid")
        )
        .await
        .expect("find"),
        None
    );
}

async fn usernames_and_emails_are_unique_per_tenant_only(s: Arc<dyn Store>) {
    tenants(&s).await;
    s.create_user(&user(A, "acme", "alice", Some("a@example.com")))
        .await
        .expect("create");
    // Same username, other case: conflict.
    let err = s
        .create_user(&user(B, "acme", "ALICE", Some("b@example.com")))
        .await
        .expect_err("duplicate username");
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
    // Same email, other case: conflict.
    let err = s
        .create_user(&user(B, "acme", "bob", Some("A@EXAMPLE.com")))
        .await
        .expect_err("duplicate email");
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
    // Same id: conflict.
    let err = s
        .create_user(&user(A, "globex", "zed", None))
        .await
        .expect_err("duplicate id");
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
    // Same names in another tenant: fine. Users without email do not collide.
    s.create_user(&user(B, "globex", "alice", Some("a@example.com")))
        .await
        .expect("other tenant");
    s.create_user(&user(C, "acme", "carol", None))
        .await
        .expect("no email");
    s.create_user(&user(
        "usr_01dddddddddddddddddddddddd",
        "acme",
        "dave",
        None,
    ))
    .await
    .expect("no email either");
}

async fn updates_conflict_with_another_users_names(s: Arc<dyn Store>) {
    tenants(&s).await;
    s.create_user(&user(A, "acme", "alice", Some("a@example.com")))
        .await
        .expect("a");
    s.create_user(&user(B, "acme", "bob", Some("b@example.com")))
        .await
        .expect("b");
    let mut bob = user(B, "acme", "Alice", Some("b@example.com"));
    let err = s.update_user(&bob, at(20)).await.expect_err("taken");
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
    bob.username = Username::parse("Robert").expect("valid");
    bob.email = Some(Email::parse("robert@example.com").expect("valid"));
    bob.email_verified = true;
    bob.profile = serde_json::from_str(r#"{"given_name":"Robert"}"#).expect("profile");
    assert!(s.update_user(&bob, at(20)).await.expect("update"));
    let stored = s
        .get_user(&tid("acme"), &uid(B))
        .await
        .expect("get")
        .expect("bob");
    assert_eq!(stored.username.as_str(), "Robert");
    assert_eq!(stored.updated_at, at(20));
    assert!(stored.email_verified);
    assert_eq!(stored.profile, bob.profile);
    // The old name is free again; another tenant's "update" changes nothing.
    s.create_user(&user(C, "acme", "bob", Some("b@example.com")))
        .await
        .expect("freed");
    let mut foreign = bob.clone();
    foreign.tenant = tid("globex");
    assert!(!s.update_user(&foreign, at(21)).await.expect("update"));
}

async fn status_password_and_login_changes_are_tenant_scoped(s: Arc<dyn Store>) {
    tenants(&s).await;
    s.create_user(&user(A, "acme", "alice", None))
        .await
        .expect("a");
    let (acme, globex, a) = (tid("acme"), tid("globex"), uid(A));
    assert!(!s
        .set_user_status(&globex, &a, UserStatus::Disabled, at(20))
        .await
        .expect("status"));
    assert!(!s
        .set_user_password(&globex, &a, "$argon2id$x", at(20))
        .await
        .expect("password"));
    assert!(!s
        .record_user_login(&globex, &a, at(20))
        .await
        .expect("login"));
    assert!(!s.delete_user(&globex, &a).await.expect("delete"));
    let unchanged = s.get_user(&acme, &a).await.expect("get").expect("a");
    assert_eq!(unchanged, user(A, "acme", "alice", None));

    assert!(s
        .set_user_status(&acme, &a, UserStatus::Disabled, at(20))
        .await
        .expect("status"));
    assert!(s
        .set_user_password(&acme, &a, "$argon2id$v=19$m=19456,t=2,p=1$x$y", at(21))
        .await
        .expect("password"));
    assert!(s.record_user_login(&acme, &a, at(30)).await.expect("login"));
    assert!(s.record_user_login(&acme, &a, at(25)).await.expect("login"));
    let got = s.get_user(&acme, &a).await.expect("get").expect("a");
    assert_eq!(got.status, UserStatus::Disabled);
    assert_eq!(
        got.password_hash.as_deref(),
        Some("$argon2id$v=19$m=19456,t=2,p=1$x$y")
    );
    assert_eq!(got.password_changed_at, Some(at(21)));
    assert_eq!(got.last_login_at, Some(at(30)), "never moves backwards");
    assert!(!format!("{got:?}").contains("argon2"), "hash redacted");
    let missing = uid(B);
    assert!(!s
        .set_user_status(&acme, &missing, UserStatus::Active, at(40))
        .await
        .expect("status"));
}

async fn listing_filters_and_pages_by_cursor_stably_under_inserts(s: Arc<dyn Store>) {
    tenants(&s).await;
    let ids: Vec<String> = (0..7)
        .map(|i| format!("usr_01{}", format!("{i}").repeat(24)))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        let mut u = user(
            id,
            "acme",
            &format!("user{i}"),
            Some(&format!("u{i}@example.com")),
        );
        if i % 2 == 1 {
            u.status = UserStatus::Disabled;
        }
        s.create_user(&u).await.expect("create");
    }
    s.create_user(&user(A, "globex", "user0", None))
        .await
        .expect("other tenant");
    let acme = tid("acme");
    let page = |after: Option<&str>, limit| UserFilter {
        after: after.map(uid),
        limit,
        ..UserFilter::default()
    };
    let first = s.list_users(&acme, &page(None, 3)).await.expect("page 1");
    let first_ids: Vec<_> = first.iter().map(|u| u.id.as_str().to_owned()).collect();
    assert_eq!(first_ids, ids[0..3]);
    // A user inserted before the cursor (a smaller id) does not shift the next page.
    s.create_user(&user(
        "usr_00zzzzzzzzzzzzzzzzzzzzzzzz",
        "acme",
        "early",
        None,
    ))
    .await
    .expect("insert");
    let second = s
        .list_users(&acme, &page(Some(&first_ids[2]), 3))
        .await
        .expect("page 2");
    let second_ids: Vec<_> = second.iter().map(|u| u.id.as_str().to_owned()).collect();
    assert_eq!(second_ids, ids[3..6]);
    let last = s
        .list_users(&acme, &page(Some(&second_ids[2]), 3))
        .await
        .expect("page 3");
    assert_eq!(last.len(), 1);

    let disabled = s
        .list_users(
            &acme,
            &UserFilter {
                status: Some(UserStatus::Disabled),
                ..UserFilter::default()
            },
        )
        .await
        .expect("filter");
    assert_eq!(disabled.len(), 3);
    assert!(disabled.iter().all(|u| u.status == UserStatus::Disabled));

    let prefix = |p: &str| UserFilter {
        prefix: Some(p.to_owned()),
        ..UserFilter::default()
    };
    assert_eq!(
        s.list_users(&acme, &prefix("user1"))
            .await
            .expect("p")
            .len(),
        1
    );
    assert_eq!(
        s.list_users(&acme, &prefix("u3@")).await.expect("p").len(),
        1
    );
    assert_eq!(
        s.list_users(&acme, &prefix("user")).await.expect("p").len(),
        7
    );
    // LIKE's wildcards are taken literally.
    assert_eq!(
        s.list_users(&acme, &prefix("user_"))
            .await
            .expect("p")
            .len(),
        0
    );
    assert_eq!(s.list_users(&acme, &prefix("%")).await.expect("p").len(), 0);
    // The limit is capped, and 0 means the cap.
    assert_eq!(
        s.list_users(&acme, &page(None, 0))
            .await
            .expect("all")
            .len(),
        8
    );
    assert_eq!(
        s.list_users(&tid("globex"), &page(None, 10_000))
            .await
            .expect("globex")
            .len(),
        1
    );
}

async fn deleting_a_user_removes_its_tokens(s: Arc<dyn Store>) {
    tenants(&s).await;
    s.create_user(&user(A, "acme", "alice", Some("a@example.com")))
        .await
        .expect("a");
    s.insert_user_token(
        &token(1, "acme", A, TokenPurpose::PasswordReset, 1_000),
        at(10),
    )
    .await
    .expect("token");
    assert!(s.delete_user(&tid("acme"), &uid(A)).await.expect("delete"));
    assert!(!s.delete_user(&tid("acme"), &uid(A)).await.expect("again"));
    assert_eq!(s.get_user(&tid("acme"), &uid(A)).await.expect("get"), None);
    assert_eq!(
        s.consume_user_token(&[1; 32], TokenPurpose::PasswordReset, at(20))
            .await
            .expect("consume"),
        None
    );
    // The names are free again.
    s.create_user(&user(B, "acme", "alice", Some("a@example.com")))
        .await
        .expect("recreate");
}

async fn one_time_tokens_are_single_use_purpose_bound_and_expire(s: Arc<dyn Store>) {
    tenants(&s).await;
    s.create_user(&user(A, "acme", "alice", None))
        .await
        .expect("a");
    s.insert_user_token(
        &token(1, "acme", A, TokenPurpose::PasswordReset, 1_000),
        at(10),
    )
    .await
    .expect("reset");
    s.insert_user_token(&token(2, "acme", A, TokenPurpose::Invite, 100), at(10))
        .await
        .expect("invite");
    // Wrong purpose: nothing, and the token stays usable.
    assert_eq!(
        s.consume_user_token(&[1; 32], TokenPurpose::Invite, at(20))
            .await
            .expect("consume"),
        None
    );
    let used = s
        .consume_user_token(&[1; 32], TokenPurpose::PasswordReset, at(20))
        .await
        .expect("consume")
        .expect("first use");
    assert_eq!(used.user_id, uid(A));
    assert_eq!(used.tenant, tid("acme"));
    assert_eq!(used.used_at, Some(at(20)));
    // Second use fails.
    assert_eq!(
        s.consume_user_token(&[1; 32], TokenPurpose::PasswordReset, at(21))
            .await
            .expect("consume"),
        None
    );
    // Expired (at its expiry instant) fails.
    assert_eq!(
        s.consume_user_token(&[2; 32], TokenPurpose::Invite, at(100))
            .await
            .expect("consume"),
        None
    );
    // Unknown digest fails.
    assert_eq!(
        s.consume_user_token(&[9; 32], TokenPurpose::Invite, at(20))
            .await
            .expect("consume"),
        None
    );
    // A token for a user of another tenant, or for no user, is refused.
    let err = s
        .insert_user_token(&token(3, "globex", A, TokenPurpose::Invite, 100), at(10))
        .await
        .expect_err("wrong tenant");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    let err = s
        .insert_user_token(&token(3, "acme", B, TokenPurpose::Invite, 100), at(10))
        .await
        .expect_err("no such user");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

async fn a_new_token_replaces_the_unused_one_of_the_same_purpose(s: Arc<dyn Store>) {
    tenants(&s).await;
    s.create_user(&user(A, "acme", "alice", None))
        .await
        .expect("a");
    s.insert_user_token(
        &token(1, "acme", A, TokenPurpose::PasswordReset, 1_000),
        at(10),
    )
    .await
    .expect("first");
    s.insert_user_token(&token(2, "acme", A, TokenPurpose::Invite, 1_000), at(10))
        .await
        .expect("invite");
    s.insert_user_token(
        &token(3, "acme", A, TokenPurpose::PasswordReset, 1_000),
        at(11),
    )
    .await
    .expect("second");
    assert_eq!(
        s.consume_user_token(&[1; 32], TokenPurpose::PasswordReset, at(20))
            .await
            .expect("consume"),
        None,
        "the older link stopped working"
    );
    assert!(s
        .consume_user_token(&[3; 32], TokenPurpose::PasswordReset, at(20))
        .await
        .expect("consume")
        .is_some());
    assert!(
        s.consume_user_token(&[2; 32], TokenPurpose::Invite, at(20))
            .await
            .expect("consume")
            .is_some(),
        "another purpose is untouched"
    );
}

async fn concurrent_consumers_of_one_token_get_it_once(s: Arc<dyn Store>) {
    tenants(&s).await;
    s.create_user(&user(A, "acme", "alice", None))
        .await
        .expect("a");
    s.insert_user_token(
        &token(1, "acme", A, TokenPurpose::PasswordReset, 1_000),
        at(10),
    )
    .await
    .expect("token");
    let tries = (0..8).map(|_| {
        let s = s.clone();
        tokio::spawn(async move {
            s.consume_user_token(&[1; 32], TokenPurpose::PasswordReset, at(20))
                .await
                .expect("consume")
                .is_some()
        })
    });
    let mut wins = 0;
    for t in tries {
        if t.await.expect("joined") {
            wins += 1;
        }
    }
    assert_eq!(wins, 1);
}

async fn a_user_of_an_unknown_tenant_is_refused(s: Arc<dyn Store>) {
    let err = s
        .create_user(&user(A, "nowhere", "alice", None))
        .await
        .expect_err("no tenant");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}
