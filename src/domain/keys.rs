//! API keys as values: who a verified key acts for, and how a secret is hashed and found.
//!
//! A key is looked up by the first 16 hex digits of its hash (not secret, and not enough to
//! forge a key), then the whole hash is compared in constant time. Keys are long random
//! strings, so a fast hash is enough; a slow password hash would only cost latency.
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

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

    /// The entities whose projects this key may list (the same rule as [`Self::can_access`]);
    /// None for every entity (an admin key).
    pub fn listable_entities(&self) -> Option<&[String]> {
        (!self.is_admin).then_some(self.entities.as_slice())
    }
}

/// The SHA-256 of a secret: all that is stored of it.
pub fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The indexed prefix a key is found by.
pub fn lookup_prefix(hash: &[u8; 32]) -> String {
    hex(&hash[..8])
}

/// Whether a stored hash is `hashed`, in time independent of where they differ.
pub fn hash_matches(stored: &[u8], hashed: &[u8; 32]) -> bool {
    bool::from(stored.ct_eq(hashed.as_slice()))
}

/// A fresh key id (12 hex digits) and secret (`wts_` and 48 hex digits).
pub fn new_key() -> (String, String) {
    (random_hex(6), format!("wts_{}", random_hex(24)))
}

/// A fresh key id alone (for a secret chosen by the operator).
pub fn new_key_id() -> String {
    random_hex(6)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_hex(len_bytes: usize) -> String {
    let mut buf = vec![0u8; len_bytes];
    getrandom::fill(&mut buf).expect("the operating system's random source failed");
    hex(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_matches_its_own_hash_only() {
        let (_, secret) = new_key();
        assert!(secret.starts_with("wts_") && secret.len() == 52);
        assert!(hash_matches(&hash(&secret), &hash(&secret)));
        assert!(!hash_matches(&hash("other"), &hash(&secret)));
        assert_eq!(lookup_prefix(&hash(&secret)).len(), 16);
    }
}
