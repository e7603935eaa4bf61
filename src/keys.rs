//! API keys: random secrets, stored only as a SHA-256 hash.
//!
//! A key is looked up by the first 16 hex digits of its hash (not secret, and not enough to
//! forge a key), then the whole hash is compared in constant time. Keys are long random
//! strings, so a fast hash is enough; a slow password hash would only cost latency.
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use subtle::ConstantTimeEq;

use crate::store;

/// Who a request acts for, once its key is verified.
#[derive(Debug, Clone)]
pub struct Principal {
    pub key_id: String,
    pub user_id: String,
    pub entities: Vec<String>,
    pub is_admin: bool,
}

impl Principal {
    /// Whether this key may read and write projects of `entity`.
    pub fn can_access(&self, entity: &str) -> bool {
        self.is_admin || self.entities.iter().any(|e| e == entity)
    }
}

/// A key just made: the secret exists only here and in the creator's terminal.
pub struct CreatedKey {
    pub id: String,
    pub secret: String,
}

pub fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

pub fn lookup_prefix(hash: &[u8; 32]) -> String {
    hex(&hash[..8])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_hex(len_bytes: usize) -> String {
    let mut buf = vec![0u8; len_bytes];
    getrandom::fill(&mut buf).expect("the operating system's random source failed");
    hex(&buf)
}

/// Create and store a key for `user` over `entities` (or every entity when `admin`).
pub async fn create(db: &PgPool, user: &str, entities: &[String], admin: bool) -> Result<CreatedKey, sqlx::Error> {
    let key = CreatedKey { id: random_hex(6), secret: format!("wts_{}", random_hex(24)) };
    store::keys::insert(db, &key.id, &hash(&key.secret), user, entities, admin).await?;
    Ok(key)
}

/// Make a fresh install usable: when no key exists, install `preset` as an admin key, or
/// generate one and return its secret so the caller can print it once.
pub async fn bootstrap(db: &PgPool, preset: Option<&str>) -> Result<Option<String>, sqlx::Error> {
    if store::keys::any_exists(db).await? {
        return Ok(None);
    }
    match preset.filter(|p| !p.is_empty()) {
        Some(secret) => {
            store::keys::insert(db, &random_hex(6), &hash(secret), "admin", &[], true).await?;
            tracing::info!("installed the bootstrap admin key from BOOTSTRAP_API_KEY");
            Ok(None)
        }
        None => Ok(Some(create(db, "admin", &[], true).await?.secret)),
    }
}

/// The principal a secret belongs to, if it is a live key.
pub async fn verify(db: &PgPool, secret: &str) -> Result<Option<Principal>, sqlx::Error> {
    let hashed = hash(secret);
    let candidates = store::keys::find_active(db, &lookup_prefix(&hashed)).await?;
    Ok(candidates
        .into_iter()
        .find(|row| bool::from(row.secret_hash.as_slice().ct_eq(hashed.as_slice())))
        .map(|row| Principal { key_id: row.id, user_id: row.user_id, entities: row.entities, is_admin: row.is_admin }))
}
