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

/// The portal's own key, kept outside the database (`audit.key_file`): it
/// keys the audit chain (HMAC-SHA-256) and the marker tag a new repository
/// carries, so that someone who can edit the SQLite file, or tag a
/// repository in ECR, can forge neither.
#[derive(Clone)]
pub struct PortalKey([u8; 32]);

impl std::fmt::Debug for PortalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PortalKey(<redacted>)")
    }
}

impl PortalKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Reads the key file, or creates it (mode 0600, 256 random bits, hex)
    /// when there is none. Returns the key and whether it was just created.
    pub fn load_or_create(path: &std::path::Path) -> anyhow::Result<(Self, bool)> {
        use anyhow::Context;
        use std::io::Write;
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes =
                    hex::decode(text.trim()).ok().and_then(|b| <[u8; 32]>::try_from(b).ok()).ok_or_else(|| {
                        anyhow::anyhow!(
                            "config key `audit.key_file`: {} does not hold a key (64 hex digits)",
                            path.display()
                        )
                    })?;
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    if let Ok(meta) = std::fs::metadata(path) {
                        if meta.permissions().mode() & 0o077 != 0 {
                            tracing::warn!(
                                "the audit key {} can be read by other users; make it private (chmod 600)",
                                path.display()
                            );
                        }
                    }
                }
                Ok((Self(bytes), false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("creating the directory of the audit key {}", path.display()))?;
                }
                let mut bytes = [0u8; 32];
                bytes[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
                bytes[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(path).with_context(|| {
                    format!("creating the audit key {} (config key `audit.key_file`)", path.display())
                })?;
                writeln!(file, "{}", hex::encode(bytes))
                    .and_then(|()| file.sync_all())
                    .with_context(|| format!("writing the audit key {}", path.display()))?;
                Ok((Self(bytes), true))
            }
            Err(e) => Err(anyhow::anyhow!("config key `audit.key_file`: cannot read {}: {e}", path.display())),
        }
    }

    /// Reads an existing key file (commands that only read never create one).
    pub fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        if !path.exists() {
            anyhow::bail!(
                "there is no audit key at {} (config key `audit.key_file`): the audit chain cannot be checked without \
                 the key the portal wrote it with",
                path.display()
            );
        }
        Ok(Self::load_or_create(path)?.0)
    }

    /// HMAC-SHA-256 under a key derived for one purpose, so one use of the
    /// key can never stand in for another.
    pub fn mac(&self, purpose: &str, message: &[u8]) -> [u8; 32] {
        use hmac::Mac;
        let mut mac = self.hmac(purpose);
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    /// An HMAC-SHA-256 ready to take a message, under the key derived for `purpose`.
    pub fn hmac(&self, purpose: &str) -> hmac::SimpleHmac<Sha256> {
        use hmac::{Mac, SimpleHmac};
        let mut derive = SimpleHmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        derive.update(purpose.as_bytes());
        let sub: [u8; 32] = derive.finalize().into_bytes().into();
        SimpleHmac::<Sha256>::new_from_slice(&sub).expect("HMAC takes any key length")
    }

    /// The value of the `ecr-portal:request` tag on the repository that request
    /// `id` creates: `<id>.<mac>`, which nobody without the key can make.
    pub fn repository_marker(&self, request_id: i64, repository: &str) -> String {
        let mac = self.mac("repository-marker", format!("{request_id}\n{repository}").as_bytes());
        format!("{request_id}.{}", hex::encode(&mac[..16]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_file_is_created_private_and_read_back() {
        let dir = tempfile::tempdir().expect("test setup");
        let path = dir.path().join("keys/audit.key");
        let (key, created) = PortalKey::load_or_create(&path).expect("test setup");
        assert!(created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).expect("test setup").permissions().mode() & 0o777, 0o600);
        }
        let (again, created) = PortalKey::load_or_create(&path).expect("test setup");
        assert!(!created);
        assert_eq!(key.mac("x", b"m"), again.mac("x", b"m"));
        assert_ne!(key.mac("x", b"m"), key.mac("y", b"m"), "purposes are separated");
        std::fs::write(&path, "not a key").expect("test setup");
        let err = PortalKey::load_or_create(&path).expect_err("refused").to_string();
        assert!(err.contains("audit.key_file") && err.contains("64 hex digits"), "{err}");
    }

    #[test]
    fn a_marker_names_its_request_and_cannot_be_made_without_the_key() {
        let a = PortalKey::from_bytes([1; 32]);
        let b = PortalKey::from_bytes([2; 32]);
        let m = a.repository_marker(7, "crytera/app");
        assert!(m.starts_with("7.") && m.len() == 2 + 32, "{m}");
        assert_ne!(m, b.repository_marker(7, "crytera/app"));
        assert_ne!(m, a.repository_marker(8, "crytera/app"));
        assert_ne!(m, a.repository_marker(7, "crytera/other"));
    }
}
