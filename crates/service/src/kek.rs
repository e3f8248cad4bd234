//! Key-encryption keys (KEKs) and the AEAD envelope that seals signing keys at rest.
//!
//! A KEK file is a keyring: one key per line as `<kek-id>:<base64url 32 bytes>`; the first line
//! is the one new envelopes are sealed with, later lines only open old ones. Each envelope records
//! the id of its KEK, so `portcullis keys rotate-kek` can re-seal rows one by one and a crash part
//! way leaves every row openable.
//!
//! Envelope: `0x01 || nonce(12) || AES-256-GCM(ciphertext || tag)`, with the key id and algorithm
//! as associated data so a sealed blob cannot be moved to another row.
//!
//! This module must never log key material; [`Kek`] prints its id only.

use std::io::Write;
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{Aad, Nonce, RandomizedNonceKey, AES_256_GCM, NONCE_LEN};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use portcullis_core::secret::Secret;
use sha2::{Digest, Sha256};

const ENVELOPE_VERSION: u8 = 1;

pub struct Kek {
    id: String,
    key: RandomizedNonceKey,
    material: Secret<[u8; 32]>,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KekError {
    #[error("could not read KEK file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("could not write KEK file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("KEK file {path} line {line} is not `<id>:<base64url of 32 bytes>`")]
    Malformed { path: PathBuf, line: usize },
    #[error("KEK file {0} holds no key")]
    Empty(PathBuf),
    #[error("KEK file {path} is readable by other users (mode {mode:o}); chmod 600 it")]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("no KEK with id {0} is configured")]
    UnknownKek(String),
    #[error("the sealed key could not be opened: wrong KEK, or the data was altered")]
    Open,
    #[error("sealing failed")]
    Seal,
}

impl Clone for Kek {
    fn clone(&self) -> Self {
        Self::with_id(self.id.clone(), *self.material.expose())
    }
}

impl Kek {
    pub fn from_bytes(material: [u8; 32]) -> Self {
        let id = format!("kek-{}", &hex(&Sha256::digest(material))[..16]);
        Self::with_id(id, material)
    }

    fn with_id(id: String, material: [u8; 32]) -> Self {
        let key = match RandomizedNonceKey::new(&AES_256_GCM, &material) {
            Ok(k) => k,
            // A 32-byte key is always valid for AES-256-GCM.
            Err(_) => unreachable!("AES-256-GCM accepts any 32-byte key"),
        };
        Self {
            id,
            key,
            material: Secret::new(material),
        }
    }

    pub fn generate() -> Result<Self, KekError> {
        let mut material = [0u8; 32];
        aws_lc_rs::rand::fill(&mut material).map_err(|_| KekError::Seal)?;
        Ok(Self::from_bytes(material))
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// HMAC-SHA256(KEK, `portcullis/derived/` || label).
    fn derive(&self, label: &str) -> Secret<[u8; 32]> {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, self.material.expose());
        let tag = aws_lc_rs::hmac::sign(&key, format!("portcullis/derived/{label}").as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        Secret::new(out)
    }

    fn line(&self) -> String {
        format!(
            "{}:{}",
            self.id,
            URL_SAFE_NO_PAD.encode(self.material.expose())
        )
    }
}

/// The KEKs loaded from one file; the first seals. Cloned for each subsystem that seals (signing
/// keys, webhook secrets), all from the same file.
#[derive(Debug, Clone)]
pub struct Keyring {
    keys: Vec<Kek>,
}

impl Keyring {
    pub fn new(primary: Kek) -> Self {
        Self {
            keys: vec![primary],
        }
    }

    pub fn primary(&self) -> &Kek {
        &self.keys[0]
    }

    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    pub fn contains(&self, id: &str) -> bool {
        self.keys.iter().any(|k| k.id == id)
    }

    /// Adds a new primary; older keys stay for opening.
    pub fn push_primary(&mut self, kek: Kek) {
        self.keys.insert(0, kek);
    }

    /// Drops every key but the primary.
    pub fn retain_primary_only(&mut self) {
        self.keys.truncate(1);
    }

    /// A 32-byte key for one purpose (`label`), derived from each KEK (primary first):
    /// HMAC-SHA256(KEK, `portcullis/derived/` || label). Every node holding the same KEK file
    /// derives the same keys; a key derived for one label says nothing about another's or the
    /// KEK. Older KEKs' keys are there so what was derived before a KEK rotation can still be
    /// recomputed.
    pub fn derive_keys(&self, label: &str) -> Vec<Secret<[u8; 32]>> {
        self.keys.iter().map(|k| k.derive(label)).collect()
    }

    /// The primary KEK's key for `label` (see [`Self::derive_keys`]).
    pub fn derive_primary_key(&self, label: &str) -> Secret<[u8; 32]> {
        self.primary().derive(label)
    }

    pub fn read(path: &Path) -> Result<Self, KekError> {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|source| KekError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KekError::TooOpen {
                path: path.to_owned(),
                mode,
            });
        }
        let text = std::fs::read_to_string(path).map_err(|source| KekError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut keys = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let malformed = || KekError::Malformed {
                path: path.to_owned(),
                line: i + 1,
            };
            let (id, b64) = line.split_once(':').ok_or_else(malformed)?;
            let bytes = URL_SAFE_NO_PAD.decode(b64).map_err(|_| malformed())?;
            let material: [u8; 32] = bytes.try_into().map_err(|_| malformed())?;
            if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(malformed());
            }
            keys.push(Kek::with_id(id.to_owned(), material));
        }
        if keys.is_empty() {
            return Err(KekError::Empty(path.to_owned()));
        }
        Ok(Self { keys })
    }

    /// Writes the keyring atomically (temp file, fsync, rename, fsync dir) with mode 0600, so a
    /// crash leaves either the old file or the new one, never a torn one.
    pub fn write(&self, path: &Path) -> Result<(), KekError> {
        let body: String = self.keys.iter().map(|k| k.line() + "\n").collect();
        write_private_file_atomically(path, body.as_bytes()).map_err(|source| KekError::Write {
            path: path.to_owned(),
            source,
        })
    }

    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<(String, Vec<u8>), KekError> {
        let kek = self.primary();
        let mut data = plaintext.to_vec();
        let nonce = kek
            .key
            .seal_in_place_append_tag(Aad::from(aad), &mut data)
            .map_err(|_| KekError::Seal)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + data.len());
        out.push(ENVELOPE_VERSION);
        out.extend_from_slice(nonce.as_ref());
        out.extend_from_slice(&data);
        Ok((kek.id.clone(), out))
    }

    pub fn open(
        &self,
        kek_id: &str,
        sealed: &[u8],
        aad: &[u8],
    ) -> Result<Secret<Vec<u8>>, KekError> {
        let kek = self
            .keys
            .iter()
            .find(|k| k.id == kek_id)
            .ok_or_else(|| KekError::UnknownKek(kek_id.to_owned()))?;
        let (&version, rest) = sealed.split_first().ok_or(KekError::Open)?;
        if version != ENVELOPE_VERSION || rest.len() < NONCE_LEN {
            return Err(KekError::Open);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| KekError::Open)?;
        let mut data = ciphertext.to_vec();
        let plain = kek
            .key
            .open_in_place(nonce, Aad::from(aad), &mut data)
            .map_err(|_| KekError::Open)?;
        Ok(Secret::new(plain.to_vec()))
    }
}

/// Creates or replaces `path` with `contents`, mode 0600, atomically and durably.
pub fn write_private_file_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn derived_keys_are_per_label_stable_and_follow_the_keyring_order() {
        let mut ring = Keyring::new(Kek::from_bytes([1; 32]));
        let a = ring.derive_keys("refresh-successor");
        assert_eq!(a.len(), 1);
        assert_eq!(a, ring.derive_keys("refresh-successor"), "stable");
        assert_ne!(a, ring.derive_keys("other"), "per label");
        assert_ne!(a[0].expose(), &[1; 32], "not the KEK itself");
        assert_eq!(ring.derive_primary_key("refresh-successor"), a[0]);
        ring.push_primary(Kek::from_bytes([2; 32]));
        let b = ring.derive_keys("refresh-successor");
        assert_eq!(b.len(), 2);
        assert_eq!(
            b[1], a[0],
            "the old KEK's key is still there, after the new primary's"
        );
        assert_ne!(b[0], a[0]);
    }

    #[test]
    fn seal_open_round_trip_and_binding_to_aad() {
        let ring = Keyring::new(Kek::generate().expect("kek"));
        let (id, sealed) = ring.seal(b"private key", b"kid-1").expect("seal");
        assert_eq!(id, ring.primary().id());
        assert_eq!(
            ring.open(&id, &sealed, b"kid-1").expect("open").expose(),
            b"private key"
        );
        assert!(matches!(
            ring.open(&id, &sealed, b"kid-2"),
            Err(KekError::Open)
        ));
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(matches!(
            ring.open(&id, &tampered, b"kid-1"),
            Err(KekError::Open)
        ));
        assert!(matches!(ring.open(&id, &[], b"kid-1"), Err(KekError::Open)));
        assert!(matches!(
            ring.open(&id, &[1, 2], b"kid-1"),
            Err(KekError::Open)
        ));
    }

    #[test]
    fn wrong_kek_cannot_open() {
        let a = Keyring::new(Kek::generate().expect("kek"));
        let (id, sealed) = a.seal(b"x", b"aad").expect("seal");
        let b = Keyring::new(Kek::generate().expect("kek"));
        assert!(matches!(
            b.open(&id, &sealed, b"aad"),
            Err(KekError::UnknownKek(_))
        ));
        // Same id claimed by a different key (a file edited by hand): authentication fails.
        let forged = Keyring::new(Kek::with_id(id.clone(), [7; 32]));
        assert!(matches!(
            forged.open(&id, &sealed, b"aad"),
            Err(KekError::Open)
        ));
    }

    #[test]
    fn file_round_trip_is_private_and_keeps_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kek");
        let old = Kek::generate().expect("kek");
        let old_id = old.id().to_owned();
        let mut ring = Keyring::new(old);
        let (_, sealed) = ring.seal(b"secret", b"a").expect("seal");
        ring.push_primary(Kek::generate().expect("kek"));
        ring.write(&path).expect("write");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = Keyring::read(&path).expect("read");
        assert_eq!(loaded.ids(), ring.ids());
        assert_eq!(
            loaded.open(&old_id, &sealed, b"a").expect("open").expose(),
            b"secret"
        );
        assert!(!format!("{loaded:?}")
            .contains(&URL_SAFE_NO_PAD.encode(loaded.primary().material.expose())));
    }

    #[test]
    fn malformed_or_open_files_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kek");
        for body in [
            "",
            "# only a comment\n",
            "nocolon\n",
            "id:!!!!\n",
            "id:AAAA\n",
        ] {
            write_private_file_atomically(&path, body.as_bytes()).expect("write");
            assert!(Keyring::read(&path).is_err(), "{body:?}");
        }
        Keyring::new(Kek::generate().expect("kek"))
            .write(&path)
            .expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            Keyring::read(&path),
            Err(KekError::TooOpen { .. })
        ));
    }
}
