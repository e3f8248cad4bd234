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
    // Listed by (created_at, id): creation times rise in pairs, and the ids are chosen so that
    // id order alone would be another order (6, 4, 5, 2, 3, 0, 1); within a pair the id decides.
    let digits = [5, 6, 3, 4, 1, 2, 0];
    let ids: Vec<String> = digits
        .iter()
        .map(|d| format!("usr_01{}", format!("{d}").repeat(24)))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        let mut u = user(
            id,
            "acme",
            &format!("user{i}"),
            Some(&format!("u{i}@example.com")),
        );
        u.created_at = at(100 + i as i64 / 2);
        if i % 2 == 1 {
            u.status = UserStatus::Disabled;
        }
        s.create_user(&u).await.expect("create");
    }
    s.create_user(&user(A, "globex", "user0", None))
        .await
        .expect("other tenant");
    let acme = tid("acme");
    let all = UserFilter::default();
    let names = |p: &Page<UserRecord>| -> Vec<String> {
        p.items.iter().map(|u| u.id.as_str().to_owned()).collect()
    };
    let first = s
        .list_users(&acme, &all, &PageRequest::first(3))
        .await
        .expect("page 1");
    assert_eq!(names(&first), ids[0..3]);
    assert!(first.next.is_some());
    // Users inserted meanwhile before the cursor (an earlier time; the cursor's own time with a
    // smaller id) do not shift the next page.
    let mut early = user("usr_09zzzzzzzzzzzzzzzzzzzzzzzz", "acme", "early", None);
    early.created_at = at(50);
    s.create_user(&early).await.expect("insert");
    let mut tie = user("usr_00zzzzzzzzzzzzzzzzzzzzzzzz", "acme", "tie", None);
    tie.created_at = at(101);
    s.create_user(&tie).await.expect("insert");
    let second = s
        .list_users(
            &acme,
            &all,
            &PageRequest {
                after: first.next.clone(),
                limit: 3,
            },
        )
        .await
        .expect("page 2");
    assert_eq!(names(&second), ids[3..6]);
    let last = s
        .list_users(
            &acme,
            &all,
            &PageRequest {
                after: second.next.clone(),
                limit: 3,
            },
        )
        .await
        .expect("page 3");
    assert_eq!(names(&last), ids[6..7]);
    assert_eq!(last.next, None, "the last page names no next page");

    let disabled = s
        .list_users(
            &acme,
            &UserFilter {
                status: Some(UserStatus::Disabled),
                ..UserFilter::default()
            },
            &PageRequest::default(),
        )
        .await
        .expect("filter");
    assert_eq!(disabled.items.len(), 3);
    assert!(disabled
        .items
        .iter()
        .all(|u| u.status == UserStatus::Disabled));
    // A filter pages too: two disabled users, then the third.
    let two = s
        .list_users(
            &acme,
            &UserFilter {
                status: Some(UserStatus::Disabled),
                ..UserFilter::default()
            },
            &PageRequest::first(2),
        )
        .await
        .expect("filtered page");
    assert_eq!(names(&two), [ids[1].clone(), ids[3].clone()]);
    assert!(two.next.is_some());

    let count = |p: &'static str| {
        let s = s.clone();
        let acme = acme.clone();
        async move {
            s.list_users(
                &acme,
                &UserFilter {
                    prefix: Some(p.to_owned()),
                    ..UserFilter::default()
                },
                &PageRequest::default(),
            )
            .await
            .expect("prefix")
            .items
            .len()
        }
    };
    assert_eq!(count("user1").await, 1);
    assert_eq!(count("u3@").await, 1);
    assert_eq!(count("user").await, 7);
    // LIKE's wildcards are taken literally.
    assert_eq!(count("user_").await, 0);
    assert_eq!(count("%").await, 0);
    // The store clamps the limit to 1..=MAX_PAGE_LIMIT (the HTTP layer refuses the rest).
    let one = s
        .list_users(&acme, &all, &PageRequest::first(0))
        .await
        .expect("clamped up");
    assert_eq!(one.items.len(), 1);
    let everyone = s
        .list_users(&acme, &all, &PageRequest::first(u32::MAX))
        .await
        .expect("clamped down");
    assert_eq!(everyone.items.len(), 9);
    assert_eq!(names(&everyone)[0], "usr_09zzzzzzzzzzzzzzzzzzzzzzzz");
    let globex = s
        .list_users(&tid("globex"), &all, &PageRequest::default())
        .await
        .expect("globex");
    assert_eq!(
        globex.items.len(),
        1,
        "another tenant's users are never listed"
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
    // Finding reads only: the right purpose finds it, any other or an unknown digest nothing.
    let found = s
        .find_user_token(&[1; 32], TokenPurpose::PasswordReset, at(20))
        .await
        .expect("find")
        .expect("found unused");
    assert_eq!((found.user_id.clone(), found.used_at), (uid(A), None));
    for (digest, purpose) in [
        (1u8, TokenPurpose::Invite),
        (9, TokenPurpose::PasswordReset),
    ] {
        assert_eq!(
            s.find_user_token(&[digest; 32], purpose, at(20))
                .await
                .expect("find"),
            None
        );
    }
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
    // A used token is not found any more; an expired one neither.
    assert_eq!(
        s.find_user_token(&[1; 32], TokenPurpose::PasswordReset, at(21))
            .await
            .expect("find"),
        None
    );
    assert_eq!(
        s.find_user_token(&[2; 32], TokenPurpose::Invite, at(100))
            .await
            .expect("find"),
        None
    );
    assert!(s
        .find_user_token(&[2; 32], TokenPurpose::Invite, at(99))
        .await
        .expect("find")
        .is_some());
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
