//! Scaled dot-product attention shared by the model families (no parameters: the DP engine sees only
//! the projections around it).

use tch::{Device, Kind, Tensor};

/// Splits `[B, T, H·h]` into heads `[B, H, T, h]`.
pub fn split_heads(x: &Tensor, heads: i64) -> Tensor {
    let (b, t, d) = x.size3().expect("[B, T, d]");
    x.reshape([b, t, heads, d / heads]).transpose(1, 2)
}

/// Merges heads `[B, H, T, h]` into `[B, T, H·h]`.
pub fn merge_heads(x: &Tensor) -> Tensor {
    let (b, h, t, d) = x.size4().expect("[B, H, T, h]");
    x.transpose(1, 2).reshape([b, t, h * d])
}

/// Which keys each query may attend to, `[B, 1, Tq, Tk]` (true = attend), or `None` for "all" (no mask).
///
/// `key_mask` `[B, Tk]` (1 = a real token, 0 = padding); `causal_offset` Some(p) makes query q (absolute
/// position p + q) see keys k ≤ p + q. A query that would see no key at all (a padding position in front
/// of the text) is let see itself, so that its row stays finite; its output is never used.
pub fn attention_mask(
    key_mask: Option<&Tensor>,
    tq: i64,
    tk: i64,
    causal_offset: Option<i64>,
    device: Device,
) -> Option<Tensor> {
    let causal = causal_offset.map(|p| {
        let q = Tensor::arange_start(p, p + tq, (Kind::Int64, device)).unsqueeze(1); // [Tq, 1]
        let k = Tensor::arange(tk, (Kind::Int64, device)).unsqueeze(0); // [1, Tk]
        k.le_tensor(&q).unsqueeze(0).unsqueeze(0) // [1, 1, Tq, Tk]
    });
    let keys = key_mask.map(|m| m.ne(0).unsqueeze(1).unsqueeze(1)); // [B, 1, 1, Tk]
    let allowed = match (causal, keys) {
        (None, None) => return None,
        (Some(c), None) => return Some(c),
        (None, Some(k)) => k,
        (Some(c), Some(k)) => c.logical_and(&k),
    };
    let empty = allowed.any_dim(-1, true).logical_not(); // [B, 1, Tq, 1]
    let p = causal_offset.unwrap_or(tk - tq);
    let q = Tensor::arange_start(p, p + tq, (Kind::Int64, device)).unsqueeze(1);
    let own = Tensor::arange(tk, (Kind::Int64, device)).unsqueeze(0).eq_tensor(&q); // [Tq, Tk]
    Some(allowed.logical_or(&empty.logical_and(&own)))
}

/// The attention mask of one forward call of a causal model, `[B, 1, T, P + S + T]` or `None` for plain
/// causal attention: queries at positions S … S+T−1 (S = `past` cached positions) see earlier keys, keys
/// that `key_mask` `[B, S + T]` marks as padding are hidden, and every query sees all `prefix` prefix-tuning
/// positions in front of the text's keys.
pub fn call_mask(key_mask: Option<&Tensor>, t: i64, past: i64, prefix: i64, device: Device) -> Option<Tensor> {
    let padded = key_mask.filter(|m| !bool::try_from(Tensor::ne(m, 0).all()).unwrap_or(false));
    let text = match (padded, past, prefix) {
        (None, 0, 0) => return None,
        _ => attention_mask(padded, t, past + t, Some(past), device)?,
    };
    if prefix == 0 {
        return Some(text);
    }
    let rows = text.size()[0];
    let all = Tensor::ones([rows, 1, t, prefix], (Kind::Bool, device));
    Some(Tensor::cat(&[&all, &text], 3))
}

/// softmax(q kᵀ · scale + mask) v with dropout probability `dropout` on the attention probabilities (0 in
/// evaluation). q: `[B, H, Tq, h]`, k, v: `[B, H, Tk, h]`, mask from [`attention_mask`]; `causal` with no
/// mask is the plain causal mask (Tq = Tk).
pub fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    causal: bool,
    scale: f64,
    dropout: f64,
) -> Tensor {
    Tensor::scaled_dot_product_attention(q, k, v, mask, dropout, causal && mask.is_none(), Some(scale), false)
}
