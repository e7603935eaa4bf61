//! API keys: create, bootstrap and verify, over the key table of `store::keys`.
use sqlx::PgPool;

pub use crate::domain::keys::Principal;
use crate::domain::keys::{hash, hash_matches, lookup_prefix, new_key, new_key_id};
use crate::store;

/// A key just made: the secret exists only here and in the creator's terminal.
pub struct CreatedKey {
    pub id: String,
    pub secret: String,
}

/// Create and store a key for `user` over `entities` (or every entity when `admin`).
pub async fn create(db: &PgPool, user: &str, entities: &[String], admin: bool) -> Result<CreatedKey, sqlx::Error> {
    let (id, secret) = new_key();
    let hashed = hash(&secret);
    store::keys::insert(db, &id, &lookup_prefix(&hashed), &hashed, user, entities, admin).await?;
    Ok(CreatedKey { id, secret })
}

/// What a fresh install did about its first key.
#[derive(Debug, PartialEq, Eq)]
pub enum Bootstrap {
    /// Keys existed already; nothing was done (a preset, if any, was ignored).
    KeysExist,
    /// The preset secret was installed as an admin key.
    Installed,
    /// An admin key was generated; its secret is to be printed once.
    Generated(String),
}

/// Make a fresh install usable: when no key exists, install `preset` as an admin key, or
/// generate one and return its secret so the caller can print it once.
pub async fn bootstrap(db: &PgPool, preset: Option<&str>) -> Result<Bootstrap, sqlx::Error> {
    if store::keys::any_exists(db).await? {
        return Ok(Bootstrap::KeysExist);
    }
    match preset.filter(|p| !p.is_empty()) {
        Some(secret) => {
            let hashed = hash(secret);
            store::keys::insert(db, &new_key_id(), &lookup_prefix(&hashed), &hashed, "admin", &[], true).await?;
            Ok(Bootstrap::Installed)
        }
        None => Ok(Bootstrap::Generated(create(db, "admin", &[], true).await?.secret)),
    }
}

/// The principal a secret belongs to, if it is a live key.
pub async fn verify(db: &PgPool, secret: &str) -> Result<Option<Principal>, sqlx::Error> {
    let hashed = hash(secret);
    let candidates = store::keys::find_active(db, &lookup_prefix(&hashed)).await?;
    Ok(candidates.into_iter().find(|row| hash_matches(&row.secret_hash, &hashed)).map(|row| Principal {
        key_id: row.id,
        user_id: row.user_id,
        entities: row.entities,
        is_admin: row.is_admin,
    }))
}
