//! The training data's fingerprint: SHA-256 over the featurised training set (every example's token ids,
//! labels and positions, in order, each sequence prefixed by its length). It is recorded in every
//! checkpoint and in summary.json; a resume whose data differs — another file, another data directory,
//! other featurisation settings, even with the same number of examples — is refused, since the ledger
//! accounts for one dataset.

use sha2::{Digest, Sha256};

/// Accumulates the fingerprint.
pub struct Fingerprint(Sha256);

impl Fingerprint {
    /// A fingerprint of data of `kind` (the objective's name: two objectives never share a value).
    pub fn new(kind: &str) -> Self {
        let mut h = Sha256::new();
        h.update(b"dpft/train-data/v1/");
        h.update(kind.as_bytes());
        Self(h)
    }

    /// Adds one number.
    pub fn number(&mut self, x: u64) -> &mut Self {
        self.0.update(x.to_le_bytes());
        self
    }

    /// Adds a sequence of ids, length first (so that [1, 2] + [3] and [1] + [2, 3] differ).
    pub fn ids(&mut self, ids: &[i64]) -> &mut Self {
        self.number(ids.len() as u64);
        for &id in ids {
            self.0.update(id.to_le_bytes());
        }
        self
    }

    /// The hex digest.
    pub fn finish(self) -> String {
        self.0.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_kinds_and_values_change_the_fingerprint() {
        let of = |kind: &str, seqs: &[&[i64]]| {
            let mut f = Fingerprint::new(kind);
            for s in seqs {
                f.ids(s);
            }
            f.finish()
        };
        let base = of("causal", &[&[1, 2], &[3]]);
        assert_eq!(base.len(), 64);
        assert_eq!(base, of("causal", &[&[1, 2], &[3]]));
        assert_ne!(base, of("causal", &[&[1], &[2, 3]]));
        assert_ne!(base, of("causal", &[&[1, 2], &[4]]));
        assert_ne!(base, of("prompt", &[&[1, 2], &[3]]));
    }
}
