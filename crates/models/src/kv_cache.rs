//! Key/value cache for incremental decoding, shared by the causal families: per layer, the keys and
//! values `[B, H_kv, S, h]` of the S positions seen so far (after any rotation: a cached key is never
//! rotated again), with a prefix-tuning prefix's positions in front.

use tch::Tensor;

/// The cache of one decoding run.
#[derive(Debug, Default)]
pub struct KvCache {
    layers: Vec<(Tensor, Tensor)>,
    /// Prefix-tuning positions stored in front of the text's (not counted by [`len`](Self::len)).
    prefix: i64,
}

impl KvCache {
    /// Text positions cached (a prefix's positions are not counted).
    pub fn len(&self) -> i64 {
        self.layers.first().map_or(0, |(k, _)| k.size()[2] - self.prefix)
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Keeps rows `index` `[B']` of the batch (beam search reordering).
    pub fn reorder(&mut self, index: &Tensor) {
        for (k, v) in &mut self.layers {
            *k = k.index_select(0, index);
            *v = v.index_select(0, index);
        }
    }

    /// Records that the first call's keys hold `positions` prefix positions in front of the text.
    pub(crate) fn set_prefix(&mut self, positions: i64) {
        self.prefix = positions;
    }

    /// Layer `i`'s keys and values of this call `[B, H_kv, T, h]` appended to the cached ones (and cached):
    /// all of them, `[B, H_kv, S + T, h]`.
    pub(crate) fn extend(&mut self, i: usize, k: Tensor, v: Tensor) -> (Tensor, Tensor) {
        let (k, v) = match self.layers.get(i) {
            Some((pk, pv)) => (Tensor::cat(&[pk, &k], 2), Tensor::cat(&[pv, &v], 2)),
            None => (k, v),
        };
        if self.layers.len() > i {
            self.layers[i] = (k.shallow_clone(), v.shallow_clone());
        } else {
            self.layers.push((k.shallow_clone(), v.shallow_clone()));
        }
        (k, v)
    }
}
