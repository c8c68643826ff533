//! The secret keys of a run. The Gaussian mechanism's guarantee (Li et al. 2022, Sec. 3; Abadi et al.
//! 2016) assumes the noise and the choice of batches are unknown to whoever sees the release, so both are
//! drawn from 256-bit keys:
//! - secure mode: the sampler's key comes from the OS (kept only in the run folder's secrets file, so
//!   that a resume continues its stream); the noise takes fresh OS randomness at every draw and has no key;
//! - fixed mode (research only): both keys are derived from the public `optimization.seed` *and* the
//!   run's identity (a hash of its config), so that two runs of a sweep never share noise or batches;
//!   anyone who knows seed and config can recompute them, so the guarantee then holds only while those
//!   are secret.
//!
//! Every derivation is SHA-256 over a length-prefixed encoding of its inputs (injective), with a domain
//! label per use.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// A 256-bit key.
pub type Key = [u8; 32];

/// 256 bits from the operating system.
pub fn os_key() -> Key {
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    key
}

/// SHA-256 of `parts`, each prefixed by its length (so that different part lists never hash alike).
pub fn hash_parts(parts: &[&[u8]]) -> Key {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// The key of `domain` (e.g. `dpft/sampler`) for a run with public `seed` and `identity` (fixed mode).
pub fn derived_key(domain: &str, seed: u64, identity: &str) -> Key {
    hash_parts(&[domain.as_bytes(), &seed.to_le_bytes(), identity.as_bytes()])
}

/// Lower-case hex, for the secrets file.
pub fn to_hex(key: &Key) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// The key written by [`to_hex`], or `None` if `text` is not 64 hex digits.
pub fn from_hex(text: &str) -> Option<Key> {
    let text = text.trim();
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, k) in key.iter_mut().enumerate() {
        *k = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_differ_by_domain_seed_and_identity_and_repeat_otherwise() {
        let k = derived_key("dpft/noise", 0, "cfg-a");
        assert_eq!(k, derived_key("dpft/noise", 0, "cfg-a"));
        assert_ne!(k, derived_key("dpft/noise", 0, "cfg-b"));
        assert_ne!(k, derived_key("dpft/noise", 1, "cfg-a"));
        assert_ne!(k, derived_key("dpft/sampler", 0, "cfg-a"));
        // Length prefixes: moving bytes between parts changes the hash.
        assert_ne!(hash_parts(&[b"ab", b"c"]), hash_parts(&[b"a", b"bc"]));
    }

    #[test]
    fn os_keys_are_fresh_and_hex_round_trips() {
        let (a, b) = (os_key(), os_key());
        assert_ne!(a, b);
        assert_eq!(from_hex(&to_hex(&a)), Some(a));
        assert_eq!(from_hex("12"), None);
        assert_eq!(from_hex(&"g".repeat(64)), None);
    }
}
