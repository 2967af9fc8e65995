//! Secrets: random values for session ids and API tokens, and the hashes
//! stored in their place (the database alone cannot be used to sign in).
use sha2::{Digest, Sha256};

/// The SHA-256 of a secret, hex: what the database keeps.
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// 244 random bits, hex.
pub fn random_hex() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// A new API token secret: `ecrp_` and 244 random bits (recognisable in secret scanners).
pub fn new_token_secret() -> String {
    format!("ecrp_{}", random_hex())
}
