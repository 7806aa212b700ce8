//! Store conformance: what every [`Store`] must do, written against the trait so that another engine
//! (PostgreSQL) runs the same checks with `run_conformance(Arc::new(its_store))`.
//!
//! Every behaviour creates its own applications under fresh random keys, so the behaviours can share one
//! database (as a PostgreSQL run will) as well as run on a fresh SQLite file each (the `#[tokio::test]`s below).

use std::path::Path;
use std::sync::Arc;

use callbox_core::IdentityType;
use callbox_server::store::sqlite::SqliteStore;
use callbox_server::store::{
    AppRecord, CallRecord, CallWrite, Capability, LegacyCallRecord, SecretRecord, SessionRecord, Store, StoreError,
    UserRecord,
};
use chrono::{DateTime, Duration, Utc};

// ----- fixtures ----------------------------------------------------------------------------------------------

/// Now, truncated to the millisecond (the precision stores keep).
fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

fn app(created_at: DateTime<Utc>) -> AppRecord {
    AppRecord {
        key: unique("app-"),
        name: "Demo".to_owned(),
        platform_user_auth: true,
        allowed_origins: vec!["http://localhost:3000".to_owned(), "https://example.com".to_owned()],
        capabilities: vec![Capability::Messaging, Capability::Calling],
        default_ticket_ttl: 600,
        max_ticket_ttl: 86_400,
        session_ttl: 86_400,
        clock_skew: 300,
        created_at,
    }
}

fn secret(app_key: &str, created_at: DateTime<Utc>) -> SecretRecord {
    SecretRecord {
        id: unique("s_"),
        app_key: app_key.to_owned(),
        sealed: vec![0, 1, 2, 255, 254, 0, 7],
        fingerprint: "1a2b3c4d".to_owned(),
        created_at,
        last_used_at: None,
        retired_at: None,
    }
}

fn user(app_key: &str, user_id: &str) -> UserRecord {
    UserRecord {
        app_key: app_key.to_owned(),
        user_id: user_id.to_owned(),
        identity_type: "username".to_owned(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        disabled: false,
        created_at: now(),
    }
}

fn session(app_key: &str, user_id: &str, created_at: DateTime<Utc>, ttl: Duration) -> SessionRecord {
    SessionRecord {
        id: unique("i_"),
        app_key: app_key.to_owned(),
        user_id: user_id.to_owned(),
        capabilities: vec![Capability::Messaging, Capability::Video],
        created_at,
        expires_at: created_at + ttl,
        revoked_at: None,
        secret_generation: 0,
        identity_type: IdentityType::Email,
    }
}

/// A new application with one secret, stored.
async fn new_app(store: &dyn Store) -> (AppRecord, SecretRecord) {
    let created = now();
    let app = app(created);
    let first = secret(&app.key, created);
    store.create_app(&app, &first).await.unwrap();
    (app, first)
}

fn ids<T>(records: &[T], id: impl Fn(&T) -> &str) -> Vec<String> {
    records.iter().map(|r| id(r).to_owned()).collect()
}

// ----- behaviours --------------------------------------------------------------------------------------------

/// ping and metadata.
pub async fn meta(store: &dyn Store) {
    store.ping().await.unwrap();
    let name = unique("meta-");
    assert_eq!(store.get_meta(&name).await.unwrap(), None);
    store.set_meta(&name, "one").await.unwrap();
    assert_eq!(store.get_meta(&name).await.unwrap().as_deref(), Some("one"));
    store.set_meta(&name, "two").await.unwrap();
    assert_eq!(store.get_meta(&name).await.unwrap().as_deref(), Some("two"));
    store.set_meta(&name, "").await.unwrap();
    assert_eq!(store.get_meta(&name).await.unwrap().as_deref(), Some(""));
}

/// Applications: create, get, list, update, delete, and settings round-trip exactly.
pub async fn apps(store: &dyn Store) {
    let base = now();
    let older = app(base - Duration::seconds(10));
    let newer = AppRecord {
        platform_user_auth: false,
        allowed_origins: Vec::new(),
        capabilities: Vec::new(),
        default_ticket_ttl: 0,
        clock_skew: 0,
        ..app(base)
    };
    store.create_app(&newer, &secret(&newer.key, base)).await.unwrap();
    store.create_app(&older, &secret(&older.key, base)).await.unwrap();

    assert_eq!(store.get_app(&older.key).await.unwrap(), older);
    assert_eq!(store.get_app(&newer.key).await.unwrap(), newer);
    assert!(matches!(store.get_app(&unique("nope-")).await, Err(StoreError::NotFound)));

    let listed: Vec<String> = ids(&store.list_apps().await.unwrap(), |a| &a.key)
        .into_iter()
        .filter(|key| *key == older.key || *key == newer.key)
        .collect();
    assert_eq!(listed, vec![older.key.clone(), newer.key.clone()], "oldest first");

    // Update replaces settings, but not the key or the creation time.
    let changed = AppRecord {
        name: "Renamed ✓ 'quoted'".to_owned(),
        platform_user_auth: false,
        allowed_origins: vec!["*".to_owned(), "http://a.test:8080".to_owned()],
        capabilities: Capability::ALL.to_vec(),
        default_ticket_ttl: 60,
        max_ticket_ttl: 604_800,
        session_ttl: 2_592_000,
        clock_skew: 3600,
        created_at: base + Duration::days(1),
        ..older.clone()
    };
    store.update_app(&changed).await.unwrap();
    assert_eq!(store.get_app(&older.key).await.unwrap(), AppRecord { created_at: older.created_at, ..changed });
    let ghost = app(base);
    assert!(matches!(store.update_app(&ghost).await, Err(StoreError::NotFound)));

    // A duplicate key is refused, and the refusal leaves nothing behind (the first secret is not added).
    let stray = secret(&older.key, base);
    assert!(store.create_app(&older, &stray).await.is_err());
    assert_eq!(store.list_secrets(&older.key, true).await.unwrap().len(), 1);

    store.delete_app(&newer.key).await.unwrap();
    assert!(matches!(store.get_app(&newer.key).await, Err(StoreError::NotFound)));
    assert!(matches!(store.delete_app(&newer.key).await, Err(StoreError::NotFound)));
    assert!(!store.list_apps().await.unwrap().iter().any(|a| a.key == newer.key));
    store.get_app(&older.key).await.unwrap();
}

/// Deleting an application takes its secrets, users, sessions and nonces with it, and nothing of another.
pub async fn delete_app_cascades(store: &dyn Store) {
    let (doomed, doomed_secret) = new_app(store).await;
    let (kept, kept_secret) = new_app(store).await;
    let t = now();
    for app in [&doomed, &kept] {
        store.add_secret(&secret(&app.key, t)).await.unwrap();
        store.create_user(&user(&app.key, "alice")).await.unwrap();
    }
    let doomed_session = session(&doomed.key, "alice", t, Duration::hours(1));
    let kept_session = session(&kept.key, "alice", t, Duration::hours(1));
    store.create_session(&doomed_session).await.unwrap();
    store.create_session(&kept_session).await.unwrap();
    let expires = t + Duration::hours(1);
    assert!(store.use_nonce(&doomed.key, "n1", expires).await.unwrap());
    assert!(store.use_nonce(&kept.key, "n1", expires).await.unwrap());

    store.delete_app(&doomed.key).await.unwrap();

    assert!(store.list_secrets(&doomed.key, true).await.unwrap().is_empty());
    assert!(matches!(store.touch_secret(&doomed_secret.id, t).await, Err(StoreError::NotFound)));
    assert!(matches!(store.get_user(&doomed.key, "alice").await, Err(StoreError::NotFound)));
    assert!(store.list_users(&doomed.key, None, 100).await.unwrap().is_empty());
    assert!(matches!(store.get_session(&doomed_session.id).await, Err(StoreError::NotFound)));

    // The other application is whole.
    assert_eq!(store.list_secrets(&kept.key, true).await.unwrap().len(), 2);
    store.touch_secret(&kept_secret.id, t).await.unwrap();
    store.get_user(&kept.key, "alice").await.unwrap();
    assert_eq!(store.get_session(&kept_session.id).await.unwrap(), kept_session);
    assert!(!store.use_nonce(&kept.key, "n1", expires).await.unwrap());

    // A recreated application of the same key starts empty (the nonce went too).
    let reborn = AppRecord { key: doomed.key.clone(), ..app(t) };
    store.create_app(&reborn, &secret(&reborn.key, t)).await.unwrap();
    assert!(store.use_nonce(&reborn.key, "n1", expires).await.unwrap());
    assert!(store.list_users(&reborn.key, None, 100).await.unwrap().is_empty());
}

/// Secrets: order, retired ones hidden unless asked, last active refused, unknown NotFound, touch.
pub async fn secrets(store: &dyn Store) {
    let (app, first) = new_app(store).await;
    let second = secret(&app.key, first.created_at + Duration::seconds(1));
    let third = secret(&app.key, first.created_at + Duration::seconds(2));
    store.add_secret(&third).await.unwrap();
    store.add_secret(&second).await.unwrap();

    let listed = store.list_secrets(&app.key, false).await.unwrap();
    assert_eq!(listed, vec![third.clone(), second.clone(), first.clone()], "newest first, exact round-trip");

    // Adding a secret to an unknown application is NotFound.
    let orphan = secret(&unique("nope-"), now());
    assert!(matches!(store.add_secret(&orphan).await, Err(StoreError::NotFound)));
    assert!(store.list_secrets(&orphan.app_key, true).await.unwrap().is_empty());

    let at = now();
    store.retire_secret(&app.key, &second.id, at).await.unwrap();
    assert_eq!(
        ids(&store.list_secrets(&app.key, false).await.unwrap(), |s| &s.id),
        vec![third.id.clone(), first.id.clone()]
    );
    let all = store.list_secrets(&app.key, true).await.unwrap();
    assert_eq!(ids(&all, |s| &s.id), vec![third.id.clone(), second.id.clone(), first.id.clone()]);
    assert_eq!(all[1].retired_at, Some(at));
    assert_eq!(all[0].retired_at, None);

    // Retiring again is harmless and keeps the first time.
    store.retire_secret(&app.key, &second.id, at + Duration::seconds(5)).await.unwrap();
    assert_eq!(store.list_secrets(&app.key, true).await.unwrap()[1].retired_at, Some(at));

    store.retire_secret(&app.key, &third.id, at).await.unwrap();
    // Now `first` is the only active secret.
    assert!(matches!(store.retire_secret(&app.key, &first.id, at).await, Err(StoreError::LastSecret)));
    assert_eq!(ids(&store.list_secrets(&app.key, false).await.unwrap(), |s| &s.id), vec![first.id.clone()]);

    // Unknown secret, or a secret of another application: NotFound.
    assert!(matches!(store.retire_secret(&app.key, "s_unknown", at).await, Err(StoreError::NotFound)));
    let (other, other_first) = new_app(store).await;
    store.add_secret(&secret(&other.key, now())).await.unwrap();
    assert!(matches!(store.retire_secret(&app.key, &other_first.id, at).await, Err(StoreError::NotFound)));
    assert_eq!(store.list_secrets(&other.key, false).await.unwrap().len(), 2);

    // Touch records the use.
    let used = now() + Duration::seconds(30);
    store.touch_secret(&first.id, used).await.unwrap();
    let touched = store.list_secrets(&app.key, false).await.unwrap();
    assert_eq!(touched[0].last_used_at, Some(used));
    assert_eq!(touched[0].sealed, first.sealed);
    assert!(matches!(store.touch_secret("s_unknown", used).await, Err(StoreError::NotFound)));
}

/// Two concurrent retirements of an application's last two active secrets leave exactly one active.
pub async fn retire_race(store: Arc<dyn Store>) {
    for _ in 0..10 {
        let (app, first) = new_app(&*store).await;
        let second = secret(&app.key, first.created_at + Duration::milliseconds(1));
        store.add_secret(&second).await.unwrap();
        let (a, b) = tokio::join!(
            store.retire_secret(&app.key, &first.id, now()),
            store.retire_secret(&app.key, &second.id, now())
        );
        let outcomes = [&a, &b];
        assert_eq!(outcomes.iter().filter(|r| r.is_ok()).count(), 1, "{a:?} {b:?}");
        assert_eq!(outcomes.iter().filter(|r| matches!(r, Err(StoreError::LastSecret))).count(), 1, "{a:?} {b:?}");
        assert_eq!(store.list_secrets(&app.key, false).await.unwrap().len(), 1);
    }
}

/// Users: create, duplicate, get, set hash, disable, delete.
pub async fn users(store: &dyn Store) {
    let (app, _) = new_app(store).await;
    let alice = user(&app.key, "alice@example.com");
    store.create_user(&alice).await.unwrap();
    assert_eq!(store.get_user(&app.key, &alice.user_id).await.unwrap(), alice);

    let twin = UserRecord { password_hash: "other".to_owned(), ..alice.clone() };
    assert!(matches!(store.create_user(&twin).await, Err(StoreError::UserExists)));
    assert_eq!(store.get_user(&app.key, &alice.user_id).await.unwrap().password_hash, alice.password_hash);

    assert!(matches!(store.get_user(&app.key, "bob").await, Err(StoreError::NotFound)));
    let orphan = user(&unique("nope-"), "alice");
    assert!(matches!(store.create_user(&orphan).await, Err(StoreError::NotFound)));

    store.set_password_hash(&app.key, &alice.user_id, "$argon2id$new").await.unwrap();
    assert_eq!(store.get_user(&app.key, &alice.user_id).await.unwrap().password_hash, "$argon2id$new");
    assert!(matches!(store.set_password_hash(&app.key, "bob", "x").await, Err(StoreError::NotFound)));

    store.set_user_disabled(&app.key, &alice.user_id, true).await.unwrap();
    assert!(store.get_user(&app.key, &alice.user_id).await.unwrap().disabled);
    store.set_user_disabled(&app.key, &alice.user_id, true).await.unwrap();
    store.set_user_disabled(&app.key, &alice.user_id, false).await.unwrap();
    assert!(!store.get_user(&app.key, &alice.user_id).await.unwrap().disabled);
    assert!(matches!(store.set_user_disabled(&app.key, "bob", true).await, Err(StoreError::NotFound)));

    let disabled = UserRecord { disabled: true, identity_type: "email".to_owned(), ..user(&app.key, "carol") };
    store.create_user(&disabled).await.unwrap();
    assert_eq!(store.get_user(&app.key, "carol").await.unwrap(), disabled);

    store.delete_user(&app.key, &alice.user_id).await.unwrap();
    assert!(matches!(store.get_user(&app.key, &alice.user_id).await, Err(StoreError::NotFound)));
    assert!(matches!(store.delete_user(&app.key, &alice.user_id).await, Err(StoreError::NotFound)));
    // The id is free again.
    store.create_user(&alice).await.unwrap();
}

/// Users belong to one application: the same id in two is two users, and one cannot reach the other's.
pub async fn users_are_per_app(store: &dyn Store) {
    let (a, _) = new_app(store).await;
    let (b, _) = new_app(store).await;
    store.create_user(&user(&a.key, "alice")).await.unwrap();
    assert!(matches!(store.get_user(&b.key, "alice").await, Err(StoreError::NotFound)));
    assert!(store.list_users(&b.key, None, 100).await.unwrap().is_empty());
    assert!(store.list_users(&b.key, Some("ali"), 100).await.unwrap().is_empty());
    assert!(matches!(store.set_password_hash(&b.key, "alice", "x").await, Err(StoreError::NotFound)));
    assert!(matches!(store.set_user_disabled(&b.key, "alice", true).await, Err(StoreError::NotFound)));
    assert!(matches!(store.delete_user(&b.key, "alice").await, Err(StoreError::NotFound)));

    let b_alice = UserRecord { identity_type: "email".to_owned(), ..user(&b.key, "alice") };
    store.create_user(&b_alice).await.unwrap();
    store.set_user_disabled(&b.key, "alice", true).await.unwrap();
    assert!(!store.get_user(&a.key, "alice").await.unwrap().disabled);
    assert_eq!(store.get_user(&a.key, "alice").await.unwrap().identity_type, "username");
    store.delete_user(&a.key, "alice").await.unwrap();
    assert!(store.get_user(&b.key, "alice").await.unwrap().disabled);
}

/// list_users: order, limit, and a search that is a literal, ASCII-case-insensitive substring.
pub async fn list_users(store: &dyn Store) {
    let (app, _) = new_app(store).await;
    let names =
        ["bob", "alice", "Alicia", "al%ce", "al_ce", "alXce", "a\\b", "zoe", "100%", "1000", "under_score", "x"];
    for name in names {
        store.create_user(&user(&app.key, name)).await.unwrap();
    }
    let key = app.key.as_str();
    let list = |search: Option<&'static str>, limit: u32| async move {
        ids(&store.list_users(key, search, limit).await.unwrap(), |u| &u.user_id)
    };

    let mut sorted: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
    sorted.sort();
    assert_eq!(list(None, 100).await, sorted, "ordered by id");
    assert_eq!(list(None, 3).await, sorted[..3].to_vec());
    assert!(list(None, 0).await.is_empty());
    assert_eq!(list(None, u32::MAX).await, sorted, "a huge limit is clamped, not an error");
    assert_eq!(list(Some(""), 100).await, sorted, "the empty search matches all");

    assert_eq!(list(Some("al%c"), 100).await, vec!["al%ce"], "% is literal");
    assert_eq!(list(Some("al_c"), 100).await, vec!["al_ce"], "_ is literal");
    assert_eq!(list(Some("_"), 100).await, vec!["al_ce", "under_score"]);
    assert_eq!(list(Some("%"), 100).await, vec!["100%", "al%ce"]);
    assert_eq!(list(Some("\\"), 100).await, vec!["a\\b"], "\\ is literal");
    assert_eq!(list(Some("0%"), 100).await, vec!["100%"]);
    assert_eq!(list(Some("lic"), 100).await, vec!["Alicia", "alice"]);
    assert_eq!(list(Some("ALIC"), 100).await, vec!["Alicia", "alice"], "ASCII case-insensitive");
    assert_eq!(list(Some("lic"), 1).await, vec!["Alicia"]);
    assert!(list(Some("nobody"), 100).await.is_empty());
}

/// Sessions: create, get, update, revoke one (tenant-scoped), revoke a user's, revoke before a time.
pub async fn sessions(store: &dyn Store) {
    let (app, _) = new_app(store).await;
    let (other, _) = new_app(store).await;
    let t = now();
    let one = session(&app.key, "alice", t, Duration::hours(1));
    store.create_session(&one).await.unwrap();
    assert_eq!(store.get_session(&one.id).await.unwrap(), one);
    assert!(matches!(store.get_session("i_unknown").await, Err(StoreError::NotFound)));
    let orphan = session(&unique("nope-"), "alice", t, Duration::hours(1));
    assert!(matches!(store.create_session(&orphan).await, Err(StoreError::NotFound)));

    // A session of another application's user, found by id alone (the caller checks the tenant).
    let elsewhere = session(&other.key, "alice", t, Duration::hours(1));
    store.create_session(&elsewhere).await.unwrap();
    assert_eq!(store.get_session(&elsewhere.id).await.unwrap().app_key, other.key);

    // Update: expiry and generation.
    let later = t + Duration::hours(5);
    store.update_session(&one.id, later, u32::MAX).await.unwrap();
    let updated = store.get_session(&one.id).await.unwrap();
    assert_eq!(updated, SessionRecord { expires_at: later, secret_generation: u32::MAX, ..one.clone() });
    assert!(matches!(store.update_session("i_unknown", later, 1).await, Err(StoreError::NotFound)));

    // Revoke one: only within its application.
    assert!(matches!(store.revoke_session(&app.key, &elsewhere.id, t).await, Err(StoreError::NotFound)));
    assert_eq!(store.get_session(&elsewhere.id).await.unwrap().revoked_at, None);
    assert!(matches!(store.revoke_session(&app.key, "i_unknown", t).await, Err(StoreError::NotFound)));
    let revoked_at = t + Duration::seconds(1);
    store.revoke_session(&app.key, &one.id, revoked_at).await.unwrap();
    assert_eq!(store.get_session(&one.id).await.unwrap().revoked_at, Some(revoked_at));
    // Again: fine, and the first time stays.
    store.revoke_session(&app.key, &one.id, revoked_at + Duration::seconds(9)).await.unwrap();
    assert_eq!(store.get_session(&one.id).await.unwrap().revoked_at, Some(revoked_at));

    // Revoke a user's: counts only the unrevoked ones of this application and user.
    let mut alices = Vec::new();
    for i in 0..3 {
        let s = session(&app.key, "alice", t + Duration::seconds(i), Duration::hours(1));
        store.create_session(&s).await.unwrap();
        alices.push(s);
    }
    let bob = session(&app.key, "bob", t, Duration::hours(1));
    store.create_session(&bob).await.unwrap();
    let at = t + Duration::seconds(10);
    assert_eq!(store.revoke_user_sessions(&app.key, "alice", at).await.unwrap(), 3);
    assert_eq!(store.revoke_user_sessions(&app.key, "alice", at).await.unwrap(), 0);
    assert_eq!(store.revoke_user_sessions(&app.key, "nobody", at).await.unwrap(), 0);
    for s in &alices {
        assert_eq!(store.get_session(&s.id).await.unwrap().revoked_at, Some(at));
    }
    assert_eq!(store.get_session(&one.id).await.unwrap().revoked_at, Some(revoked_at), "not overwritten");
    assert_eq!(store.get_session(&bob.id).await.unwrap().revoked_at, None);
    assert_eq!(store.get_session(&elsewhere.id).await.unwrap().revoked_at, None, "other application untouched");

    // Revoke before a time: strictly earlier creations, unrevoked only, this application only.
    let (app3, _) = new_app(store).await;
    let early = session(&app3.key, "u1", t - Duration::minutes(10), Duration::hours(1));
    let edge = session(&app3.key, "u2", t, Duration::hours(1));
    let late = session(&app3.key, "u3", t + Duration::minutes(10), Duration::hours(1));
    let early_revoked = SessionRecord {
        revoked_at: Some(t - Duration::minutes(1)),
        ..session(&app3.key, "u4", t - Duration::minutes(20), Duration::hours(1))
    };
    for s in [&early, &edge, &late, &early_revoked] {
        store.create_session(s).await.unwrap();
    }
    let other_early = session(&other.key, "u1", t - Duration::minutes(10), Duration::hours(1));
    store.create_session(&other_early).await.unwrap();
    let at = t + Duration::minutes(30);
    assert_eq!(store.revoke_app_sessions_before(&app3.key, t, at).await.unwrap(), 1);
    assert_eq!(store.get_session(&early.id).await.unwrap().revoked_at, Some(at));
    assert_eq!(store.get_session(&edge.id).await.unwrap().revoked_at, None);
    assert_eq!(store.get_session(&late.id).await.unwrap().revoked_at, None);
    assert_eq!(store.get_session(&early_revoked.id).await.unwrap().revoked_at, early_revoked.revoked_at);
    assert_eq!(store.get_session(&other_early.id).await.unwrap().revoked_at, None);
    assert_eq!(store.revoke_app_sessions_before(&app3.key, t + Duration::hours(1), at).await.unwrap(), 2);
}

/// list_live_sessions: unrevoked and unexpired at `now`, newest first, by user, limited.
pub async fn live_sessions(store: &dyn Store) {
    let (app, _) = new_app(store).await;
    let (other, _) = new_app(store).await;
    let t = now();
    let a1 = session(&app.key, "alice", t - Duration::minutes(3), Duration::hours(1));
    let a2 = session(&app.key, "alice", t - Duration::minutes(2), Duration::hours(1));
    let b1 = session(&app.key, "bob", t - Duration::minutes(1), Duration::hours(1));
    let expired = session(&app.key, "alice", t - Duration::hours(2), Duration::hours(1));
    let at_edge = session(&app.key, "alice", t - Duration::hours(1), Duration::hours(1)); // expires_at == t
    let revoked = session(&app.key, "alice", t, Duration::hours(1));
    let foreign = session(&other.key, "alice", t, Duration::hours(1));
    for s in [&a1, &a2, &b1, &expired, &at_edge, &revoked, &foreign] {
        store.create_session(s).await.unwrap();
    }
    store.revoke_session(&app.key, &revoked.id, t).await.unwrap();

    let key = app.key.as_str();
    let live = |user: Option<&'static str>, at: DateTime<Utc>, limit: u32| async move {
        ids(&store.list_live_sessions(key, user, at, limit).await.unwrap(), |s| &s.id)
    };
    assert_eq!(live(None, t, 100).await, vec![b1.id.clone(), a2.id.clone(), a1.id.clone()]);
    assert_eq!(live(Some("alice"), t, 100).await, vec![a2.id.clone(), a1.id.clone()]);
    assert_eq!(live(Some("alice"), t, 1).await, vec![a2.id.clone()]);
    assert!(live(Some("nobody"), t, 100).await.is_empty());
    assert!(live(None, t, 0).await.is_empty());
    assert_eq!(live(None, t, u32::MAX).await.len(), 3);
    // Before the edge session's expiry it is live; long after, nothing is.
    assert_eq!(live(Some("alice"), t - Duration::milliseconds(1), 100).await.len(), 3);
    assert!(live(None, t + Duration::hours(2), 100).await.is_empty());
    // Full records come back.
    assert_eq!(store.list_live_sessions(&app.key, Some("bob"), t, 10).await.unwrap(), vec![b1]);
}

/// Nonces: first use true, replay false, per application, reusable once their time is up.
pub async fn nonces(store: &dyn Store) {
    let (app, _) = new_app(store).await;
    let (other, _) = new_app(store).await;
    let expires = now() + Duration::minutes(10);
    assert!(store.use_nonce(&app.key, "n-1", expires).await.unwrap());
    assert!(!store.use_nonce(&app.key, "n-1", expires).await.unwrap());
    assert!(!store.use_nonce(&app.key, "n-1", expires + Duration::hours(1)).await.unwrap());
    assert!(store.use_nonce(&other.key, "n-1", expires).await.unwrap(), "another application's nonce space");
    assert!(!store.use_nonce(&other.key, "n-1", expires).await.unwrap());
    assert!(store.use_nonce(&app.key, "n-2", expires).await.unwrap());

    // Remembered until its time is up, then reusable even before housekeeping ran; and then remembered again.
    let short = now() + Duration::milliseconds(300);
    assert!(store.use_nonce(&app.key, "n-3", short).await.unwrap());
    assert!(!store.use_nonce(&app.key, "n-3", short).await.unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert!(store.use_nonce(&app.key, "n-3", expires).await.unwrap());
    assert!(!store.use_nonce(&app.key, "n-3", expires).await.unwrap());

    // A nonce whose time is already past is recorded (first use) but protects nothing.
    let past = now() - Duration::minutes(1);
    assert!(store.use_nonce(&app.key, "n-4", past).await.unwrap());
    assert!(store.use_nonce(&app.key, "n-4", expires).await.unwrap());
    assert!(!store.use_nonce(&app.key, "n-4", expires).await.unwrap());

    // Odd nonces are plain text.
    for odd in ["", "'; DROP TABLE used_nonces; --", "ünïcödé", "%_"] {
        assert!(store.use_nonce(&app.key, odd, expires).await.unwrap(), "{odd:?}");
        assert!(!store.use_nonce(&app.key, odd, expires).await.unwrap(), "{odd:?}");
    }
    assert!(matches!(store.use_nonce(&unique("nope-"), "n", expires).await, Err(StoreError::NotFound)));
}

/// purge_expired: nonces past their time, sessions expired more than 7 days before `now`.
pub async fn purge(store: &dyn Store) {
    let (app, _) = new_app(store).await;
    let t = now();
    // Purge "as of" a time in the future, so that nonces still in force for use_nonce's own clock go.
    let purge_at = t + Duration::days(30);
    let nonce_gone = purge_at - Duration::seconds(1);
    let nonce_kept = purge_at + Duration::minutes(1);
    assert!(store.use_nonce(&app.key, "gone", nonce_gone).await.unwrap());
    assert!(store.use_nonce(&app.key, "kept", nonce_kept).await.unwrap());
    let long_expired = session(&app.key, "alice", purge_at - Duration::days(9), Duration::days(1)); // 8 days ago
    let recently_expired = session(&app.key, "alice", purge_at - Duration::days(2), Duration::days(1)); // 1 day ago
    let live = session(&app.key, "alice", purge_at, Duration::days(1));
    for s in [&long_expired, &recently_expired, &live] {
        store.create_session(s).await.unwrap();
    }

    let removed = store.purge_expired(purge_at).await.unwrap();
    assert!(removed >= 2, "removed {removed}");
    assert!(matches!(store.get_session(&long_expired.id).await, Err(StoreError::NotFound)));
    store.get_session(&recently_expired.id).await.unwrap();
    store.get_session(&live.id).await.unwrap();
    assert!(store.use_nonce(&app.key, "gone", nonce_kept).await.unwrap(), "purged, so first use again");
    assert!(!store.use_nonce(&app.key, "kept", nonce_kept).await.unwrap(), "still remembered");
    store.get_app(&app.key).await.unwrap();
}

/// Many concurrent session creations all succeed (a busy engine waits; it does not fail the request).
pub async fn concurrent_sessions(store: Arc<dyn Store>, count: usize) {
    let (app, _) = new_app(&*store).await;
    let t = now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        let store = Arc::clone(&store);
        let record = session(&app.key, &format!("user-{i}"), t, Duration::hours(1));
        tasks.spawn(async move {
            store.create_session(&record).await?;
            // A read beside the writes.
            store.get_session(&record.id).await.map(|got| got == record)
        });
    }
    let mut ok = 0;
    while let Some(joined) = tasks.join_next().await {
        assert!(joined.unwrap().unwrap(), "read back what was written");
        ok += 1;
    }
    assert_eq!(ok, count);
    let live = store.list_live_sessions(&app.key, None, t, u32::MAX).await.unwrap();
    assert_eq!(live.len(), count.min(1000));
}

fn call(app_key: &str, caller: &str, callee: &str, started_at: DateTime<Utc>) -> CallRecord {
    CallRecord {
        id: unique("call-"),
        app_key: app_key.to_owned(),
        caller_id: caller.to_owned(),
        callee_id: callee.to_owned(),
        legacy_call_id: None,
        started_at,
        answered_at: None,
        ended_at: None,
        end_cause: None,
        ended_by: None,
    }
}

fn call_ended(id: &str, at: DateTime<Utc>, cause: &str, by: &str) -> CallWrite {
    CallWrite::Ended { id: id.to_owned(), at, cause: cause.to_owned(), by: by.to_owned() }
}

/// Call records: a batch applied in order (placed, answered, ended in one batch), the first answer and the first
/// end kept, changes to unknown calls and calls of unknown applications dropped, the listing newest first per
/// application with the user matching either end, and deletion with the application.
pub async fn calls(store: &dyn Store) {
    let (app, _) = new_app(store).await;
    let (other, _) = new_app(store).await;
    let t = now();
    let whole = call(&app.key, "alice", "bob", t);
    store
        .write_calls(&[
            CallWrite::Placed(whole.clone()),
            CallWrite::Answered { id: whole.id.clone(), at: t + Duration::milliseconds(1_250) },
            call_ended(&whole.id, t + Duration::milliseconds(9_999), "hung_up", "callee"),
        ])
        .await
        .unwrap();
    let expected = CallRecord {
        answered_at: Some(t + Duration::milliseconds(1_250)),
        ended_at: Some(t + Duration::milliseconds(9_999)),
        end_cause: Some("hung_up".to_owned()),
        ended_by: Some("callee".to_owned()),
        ..whole.clone()
    };
    assert_eq!(store.list_calls(&app.key, None, 10).await.unwrap(), std::slice::from_ref(&expected));

    // A second answer, a second end and a second placement of the same id change nothing: the first one stands.
    store
        .write_calls(&[
            CallWrite::Answered { id: whole.id.clone(), at: t + Duration::seconds(30) },
            call_ended(&whole.id, t + Duration::seconds(40), "failure", "server"),
            CallWrite::Placed(CallRecord { caller_id: "mallory".to_owned(), ..whole.clone() }),
        ])
        .await
        .unwrap();
    assert_eq!(store.list_calls(&app.key, None, 10).await.unwrap(), std::slice::from_ref(&expected));

    // Changes to a call never placed, and a call of an application that does not exist, are dropped.
    let ghost = unique("call-");
    let orphan = call(&unique("no-app-"), "alice", "bob", t);
    store
        .write_calls(&[
            CallWrite::Answered { id: ghost.clone(), at: t },
            call_ended(&ghost, t, "hung_up", "caller"),
            CallWrite::Placed(orphan.clone()),
        ])
        .await
        .unwrap();
    assert!(store.list_calls(&orphan.app_key, None, 10).await.unwrap().is_empty());
    assert_eq!(store.list_calls(&app.key, None, 10).await.unwrap().len(), 1);
    store.write_calls(&[]).await.unwrap();

    // Newest first (the same start: the larger id first), the user at either end, the other application apart.
    let later = call(&app.key, "carol", "alice", t + Duration::seconds(1));
    let to_carol = call(&app.key, "bob", "carol", t + Duration::seconds(2));
    let unrelated = call(&app.key, "dave", "erin", t + Duration::seconds(2));
    let mut same_start = [to_carol.id.clone(), unrelated.id.clone()];
    same_start.sort_by(|a, b| b.cmp(a));
    let elsewhere = call(&other.key, "alice", "bob", t + Duration::seconds(3));
    let placed: Vec<CallWrite> =
        [&later, &to_carol, &unrelated, &elsewhere].into_iter().cloned().map(CallWrite::Placed).collect();
    store.write_calls(&placed).await.unwrap();
    let listed = |user: Option<&'static str>, limit: u32, key: &str| {
        let key = key.to_owned();
        async move { ids(&store.list_calls(&key, user, limit).await.unwrap(), |c| &c.id) }
    };
    let [first, second] = same_start.clone();
    assert_eq!(listed(None, 10, &app.key).await, [first.clone(), second.clone(), later.id.clone(), whole.id.clone()]);
    assert_eq!(listed(Some("alice"), 10, &app.key).await, [later.id.clone(), whole.id.clone()]);
    assert_eq!(listed(Some("carol"), 10, &app.key).await, [to_carol.id.clone(), later.id.clone()]);
    assert!(listed(Some("ALICE"), 10, &app.key).await.is_empty(), "user ids are case-sensitive");
    assert_eq!(listed(None, 2, &app.key).await, same_start);
    assert_eq!(listed(None, 0, &app.key).await, [first], "a limit of 0 still lists one");
    assert_eq!(listed(None, 10, &other.key).await, std::slice::from_ref(&elsewhere.id));
    assert!(listed(Some("carol"), 10, &other.key).await.is_empty());

    // The records go with their application.
    store.delete_app(&app.key).await.unwrap();
    assert!(store.list_calls(&app.key, None, 10).await.unwrap().is_empty());
    assert_eq!(store.list_calls(&other.key, None, 10).await.unwrap().len(), 1);
}

/// Legacy calls: the SDK's id is taken once per application (another application may use it), the record is
/// written with it and listed with its `legacyCallId`, the first answering session wins and an ended call is not
/// answered, unknown ids and applications are `NotFound`, and retention forgets the SDK's ids but keeps the records.
pub async fn legacy_calls(store: &dyn Store) {
    let (app, _) = new_app(store).await;
    let (other, _) = new_app(store).await;
    let t = now();
    let legacy = |app_key: &str, call_id: &str| LegacyCallRecord {
        call_id: call_id.to_owned(),
        record: call(app_key, "alice", "bob", t),
        caller_session_id: "session-a".to_owned(),
        answered_session_id: None,
    };
    let first = legacy(&app.key, "sdk-call-1");
    assert!(store.put_legacy_call(&first).await.unwrap());
    assert!(!store.put_legacy_call(&legacy(&app.key, "sdk-call-1")).await.unwrap(), "one use per application");
    assert!(store.put_legacy_call(&legacy(&other.key, "sdk-call-1")).await.unwrap(), "another application may");
    assert!(matches!(store.put_legacy_call(&legacy("no-such-app", "x")).await, Err(StoreError::NotFound)));

    let read = store.get_legacy_call(&app.key, "sdk-call-1").await.unwrap();
    assert_eq!(read.record.id, first.record.id);
    assert_eq!((read.caller_session_id.as_str(), read.answered_session_id.as_deref()), ("session-a", None));
    assert_eq!(read.record.legacy_call_id.as_deref(), Some("sdk-call-1"));
    assert!(matches!(store.get_legacy_call(&app.key, "unknown").await, Err(StoreError::NotFound)));
    assert!(matches!(store.get_legacy_call("no-such-app", "sdk-call-1").await, Err(StoreError::NotFound)));

    let at = t + Duration::milliseconds(1_500);
    assert!(store.answer_legacy_call(&app.key, "sdk-call-1", "session-b1", at).await.unwrap());
    assert!(!store.answer_legacy_call(&app.key, "sdk-call-1", "session-b2", at).await.unwrap(), "first answer wins");
    let read = store.get_legacy_call(&app.key, "sdk-call-1").await.unwrap();
    assert_eq!(read.answered_session_id.as_deref(), Some("session-b1"));
    assert_eq!(read.record.answered_at, Some(at));
    assert!(matches!(store.answer_legacy_call(&app.key, "unknown", "s", at).await, Err(StoreError::NotFound)));
    // An ended call is not answered any more.
    let ended = legacy(&app.key, "sdk-call-2");
    store.put_legacy_call(&ended).await.unwrap();
    store.write_calls(&[call_ended(&ended.record.id, at, "canceled", "caller")]).await.unwrap();
    assert!(!store.answer_legacy_call(&app.key, "sdk-call-2", "session-b1", at).await.unwrap());

    let listed = store.list_calls(&app.key, Some("bob"), 10).await.unwrap();
    let ids: Vec<Option<&str>> = listed.iter().map(|call| call.legacy_call_id.as_deref()).collect();
    assert_eq!(listed.len(), 2);
    assert!(ids.contains(&Some("sdk-call-1")) && ids.contains(&Some("sdk-call-2")), "{ids:?}");

    // Retention: the SDK's ids go, the records stay.
    assert!(store.purge_transports(t + Duration::seconds(1)).await.unwrap() >= 2);
    assert!(matches!(store.get_legacy_call(&app.key, "sdk-call-1").await, Err(StoreError::NotFound)));
    let listed = store.list_calls(&app.key, None, 10).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|call| call.legacy_call_id.is_none()));
}

/// Every behaviour, one after the other, on one store.
pub async fn run_conformance(store: Arc<dyn Store>) {
    meta(&*store).await;
    apps(&*store).await;
    delete_app_cascades(&*store).await;
    secrets(&*store).await;
    retire_race(Arc::clone(&store)).await;
    users(&*store).await;
    users_are_per_app(&*store).await;
    list_users(&*store).await;
    sessions(&*store).await;
    live_sessions(&*store).await;
    nonces(&*store).await;
    purge(&*store).await;
    concurrent_sessions(Arc::clone(&store), 50).await;
    calls(&*store).await;
    legacy_calls(&*store).await;
}

// ----- SQLite ------------------------------------------------------------------------------------------------

/// A store on a new file in a temporary directory (kept alive by the returned guard).
async fn sqlite() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("callbox.db")).await.unwrap();
    (Arc::new(store), dir)
}

#[tokio::test]
async fn sqlite_legacy_calls() {
    let (store, _dir) = sqlite().await;
    legacy_calls(&*store).await;
}

#[tokio::test]
async fn sqlite_calls() {
    let (store, _dir) = sqlite().await;
    calls(&*store).await;
}

#[tokio::test]
async fn sqlite_meta() {
    let (store, _dir) = sqlite().await;
    meta(&*store).await;
}

#[tokio::test]
async fn sqlite_apps() {
    let (store, _dir) = sqlite().await;
    apps(&*store).await;
}

#[tokio::test]
async fn sqlite_delete_app_cascades() {
    let (store, _dir) = sqlite().await;
    delete_app_cascades(&*store).await;
}

#[tokio::test]
async fn sqlite_secrets() {
    let (store, _dir) = sqlite().await;
    secrets(&*store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_retire_race() {
    let (store, _dir) = sqlite().await;
    retire_race(store).await;
}

#[tokio::test]
async fn sqlite_users() {
    let (store, _dir) = sqlite().await;
    users(&*store).await;
}

#[tokio::test]
async fn sqlite_users_are_per_app() {
    let (store, _dir) = sqlite().await;
    users_are_per_app(&*store).await;
}

#[tokio::test]
async fn sqlite_list_users() {
    let (store, _dir) = sqlite().await;
    list_users(&*store).await;
}

#[tokio::test]
async fn sqlite_sessions() {
    let (store, _dir) = sqlite().await;
    sessions(&*store).await;
}

#[tokio::test]
async fn sqlite_live_sessions() {
    let (store, _dir) = sqlite().await;
    live_sessions(&*store).await;
}

#[tokio::test]
async fn sqlite_nonces() {
    let (store, _dir) = sqlite().await;
    nonces(&*store).await;
}

#[tokio::test]
async fn sqlite_purge() {
    let (store, _dir) = sqlite().await;
    purge(&*store).await;
    // On a fresh file the count is exact: one nonce and one session.
    let (store, _dir) = sqlite().await;
    let (app, _) = new_app(&*store).await;
    let t = now();
    assert!(store.use_nonce(&app.key, "old", t - Duration::seconds(1)).await.unwrap());
    store.create_session(&session(&app.key, "u", t - Duration::days(9), Duration::days(1))).await.unwrap();
    store.create_session(&session(&app.key, "u", t - Duration::days(2), Duration::days(1))).await.unwrap();
    assert_eq!(store.purge_expired(t).await.unwrap(), 2);
    assert_eq!(store.purge_expired(t).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_concurrent_sessions() {
    let (store, _dir) = sqlite().await;
    concurrent_sessions(store, 200).await;
}

/// Sessions written together (SQLite's group commit) each get their own answer: one whose application does not
/// exist is refused with NotFound, and the others beside it are written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_group_commit_answers_each_session() {
    let (store, _dir) = sqlite().await;
    let (app, _) = new_app(&*store).await;
    let t = now();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..64 {
        let store = Arc::clone(&store);
        let record = session(if n == 17 { "no-such-app" } else { &app.key }, &format!("u{n}"), t, Duration::hours(1));
        tasks.spawn(async move { (n, record.clone(), store.create_session(&record).await) });
    }
    let mut written = 0;
    while let Some(joined) = tasks.join_next().await {
        let (n, record, result) = joined.unwrap();
        if n == 17 {
            assert!(matches!(result, Err(StoreError::NotFound)), "{result:?}");
            assert!(matches!(store.get_session(&record.id).await, Err(StoreError::NotFound)));
        } else {
            result.unwrap();
            assert_eq!(store.get_session(&record.id).await.unwrap(), record);
            written += 1;
        }
    }
    assert_eq!(written, 63);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_conformance_on_one_store() {
    let (store, _dir) = sqlite().await;
    run_conformance(store).await;
}

/// What is written is there after the store is closed and the file reopened; reopening migrates nothing twice.
#[tokio::test]
async fn sqlite_durability_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested-name.db");
    let (app, first, user, session_record) = {
        let store = SqliteStore::open(&path).await.unwrap();
        store.set_meta("admin_token_sha256", "abc123").await.unwrap();
        let (app, first) = new_app(&store).await;
        let user = user(&app.key, "alice");
        store.create_user(&user).await.unwrap();
        let session_record = session(&app.key, "alice", now(), Duration::hours(1));
        store.create_session(&session_record).await.unwrap();
        assert!(store.use_nonce(&app.key, "n", now() + Duration::hours(1)).await.unwrap());
        store.close().await;
        (app, first, user, session_record)
    };
    assert!(path.exists());
    // Dropped without close, too.
    {
        let store = SqliteStore::open(&path).await.unwrap();
        store.set_meta("second", "yes").await.unwrap();
    }
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.get_meta("admin_token_sha256").await.unwrap().as_deref(), Some("abc123"));
    assert_eq!(store.get_meta("second").await.unwrap().as_deref(), Some("yes"));
    assert_eq!(store.get_app(&app.key).await.unwrap(), app);
    assert_eq!(store.list_secrets(&app.key, false).await.unwrap(), vec![first]);
    assert_eq!(store.get_user(&app.key, "alice").await.unwrap(), user);
    assert_eq!(store.get_session(&session_record.id).await.unwrap(), session_record);
    assert!(!store.use_nonce(&app.key, "n", now() + Duration::hours(1)).await.unwrap());
    store.close().await;
}

/// The group-commit writers keep a connection each between groups; closing the store still returns at once (a
/// pool's `close` waits for every connection), and what was written is durable.
#[tokio::test]
async fn sqlite_close_returns_while_the_group_commit_writers_hold_their_connections() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("callbox.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let (app, _) = new_app(&store).await;
    let kept = session(&app.key, "alice", now(), Duration::hours(1));
    store.create_session(&kept).await.unwrap();
    let message = callbox_server::store::MessageRecord {
        id: "m1".into(),
        app_key: app.key.clone(),
        sender_id: "alice".into(),
        recipient_ids: vec!["bob".into()],
        text: "hello".into(),
        headers: "{}".into(),
        created_at: now(),
    };
    assert_eq!(store.append_messages(std::slice::from_ref(&message)).await.pop().unwrap().unwrap(), [1]);
    tokio::time::timeout(std::time::Duration::from_secs(5), store.close()).await.expect("close waited for the writers");
    // After the close, writes are refused rather than lost or hung.
    let late = session(&app.key, "alice", now(), Duration::hours(1));
    let refused = tokio::time::timeout(std::time::Duration::from_secs(5), store.create_session(&late)).await;
    assert!(matches!(refused, Ok(Err(StoreError::Unavailable(_)))), "{refused:?}");
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.get_session(&kept.id).await.unwrap(), kept);
    assert_eq!(store.inbox_last_seq(&app.key, "bob").await.unwrap(), 1);
    store.close().await;
}

/// A missing directory is an error, not a panic.
#[tokio::test]
async fn sqlite_open_refuses_a_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path: &Path = &dir.path().join("no-such-dir").join("callbox.db");
    assert!(matches!(SqliteStore::open(path).await, Err(StoreError::Unavailable(_))));
}

const KILL_DB: &str = "CALLBOX_STORE_KILL_DB";
const KILL_APP: &str = "CALLBOX_STORE_KILL_APP";
const KILL_ACKS: &str = "CALLBOX_STORE_KILL_ACKS";

/// The child of `sqlite_acknowledged_writes_survive_sigkill` (does nothing unless started by it): creates sessions
/// one after the other and appends each id to the acknowledgement file once `create_session` has returned. Stops
/// by itself after 20 s or 20,000 sessions if nobody kills it.
#[tokio::test]
#[ignore = "not a test: the child process that sqlite_acknowledged_writes_survive_sigkill starts and kills"]
async fn sqlite_sigkill_child() {
    use std::io::Write;
    let (Ok(db), Ok(app_key), Ok(acks)) = (std::env::var(KILL_DB), std::env::var(KILL_APP), std::env::var(KILL_ACKS))
    else {
        return;
    };
    let store = SqliteStore::open(Path::new(&db)).await.unwrap();
    let mut acks = std::fs::OpenOptions::new().append(true).open(acks).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    for i in 0..20_000 {
        if std::time::Instant::now() > deadline {
            break;
        }
        let record = session(&app_key, &format!("user-{i}"), now(), Duration::hours(1));
        store.create_session(&record).await.unwrap();
        acks.write_all(format!("{}\n", record.id).as_bytes()).unwrap();
    }
}

/// Sessions acknowledged by a process killed with SIGKILL in the middle of writing are all there on reopen.
#[tokio::test]
async fn sqlite_acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("callbox.db");
    let acks = dir.path().join("acks");
    std::fs::write(&acks, "").unwrap();
    let app_key = {
        let store = SqliteStore::open(&db).await.unwrap();
        let (app, _) = new_app(&store).await;
        store.close().await;
        app.key
    };
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["store::sqlite_sigkill_child", "--exact", "--ignored", "--test-threads=1", "--quiet"])
        .env(KILL_DB, &db)
        .env(KILL_APP, &app_key)
        .env(KILL_ACKS, &acks)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Let it write a while, then kill it mid-stream.
    let waited = std::time::Instant::now();
    while std::fs::read_to_string(&acks).unwrap().lines().count() < 200 {
        assert!(waited.elapsed() < std::time::Duration::from_secs(60), "the child wrote too little");
        assert!(child.try_wait().unwrap().is_none(), "the child ended early");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let text = std::fs::read_to_string(&acks).unwrap();
    // Only whole lines were acknowledged.
    let acknowledged: Vec<&str> = text.split_inclusive('\n').filter_map(|line| line.strip_suffix('\n')).collect();
    assert!(acknowledged.len() >= 200);
    let store = SqliteStore::open(&db).await.unwrap();
    for id in &acknowledged {
        let got = store.get_session(id).await.unwrap_or_else(|e| panic!("acknowledged session {id} lost: {e}"));
        assert_eq!(got.app_key, app_key);
    }
    let live = store.list_live_sessions(&app_key, None, now() - Duration::minutes(1), u32::MAX).await.unwrap();
    assert!(live.len() >= acknowledged.len().min(1000));
    store.close().await;
}
