//! Text helpers shared by the metrics: whitespace classes of the reference implementations and the
//! mteval-v13a tokeniser.
//!
//! The reference tools differ in what they call whitespace, and a metric that splits on whitespace must split
//! exactly as its reference does:
//! - Python's `str.split()` / `str.strip()` ([`is_py_space`]): Unicode `White_Space` plus U+001C–U+001F;
//! - Perl's `\s` on Unicode strings (mteval), [`char::is_whitespace`]: Unicode `White_Space`.

/// Python's `str.isspace()` for one character: Unicode `White_Space` plus the separators U+001C–U+001F.
pub fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `s.split()` (no argument): runs of [`is_py_space`] separate tokens; no empty tokens.
pub fn py_split(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_py_space).filter(|t| !t.is_empty())
}

/// Which whitespace ends a token after tokenisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whitespace {
    /// Python's `str.split()` (sacrebleu).
    Python,
    /// Perl's `\s` (mteval-v13a).
    Perl,
}

/// Replace `regex ([A])([B])` by `fmt(a, b)`, scanning left to right without overlaps, as Python's `re.sub`
/// and Perl's `s///g` do for a two-character pattern.
fn sub2(
    chars: &[char],
    first: impl Fn(char) -> bool,
    second: impl Fn(char) -> bool,
    out: &mut Vec<char>,
    fmt: impl Fn(char, char, &mut Vec<char>),
) {
    out.clear();
    let mut i = 0;
    while i < chars.len() {
        if i + 1 < chars.len() && first(chars[i]) && second(chars[i + 1]) {
            fmt(chars[i], chars[i + 1], out);
            i += 2;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
}

/// The mteval-v13a tokenisation (NIST `mteval-v13a.pl` sub `tokenization`, reproduced by sacrebleu's
/// `Tokenizer13a`), without lower-casing; the result is split into tokens on `whitespace`.
///
/// Steps: drop `<skipped>`, join `-\n` hyphenation, newlines to spaces, un-escape `&quot; &amp; &lt; &gt;`;
/// pad with spaces; space out ``{|}~[\]^_` !"#$%&()*+:;<=>?@/``; space out `.` and `,` unless preceded by a
/// digit, then unless followed by a digit; space out `-` after a digit.
///
/// ```
/// let toks = metrics::text::tokenize_13a("It costs £20-25, (really).", metrics::text::Whitespace::Python);
/// assert_eq!(toks, ["It", "costs", "£20", "-", "25", ",", "(", "really", ")", "."]);
/// ```
pub fn tokenize_13a(line: &str, whitespace: Whitespace) -> Vec<String> {
    let mut line = line.replace("<skipped>", "").replace("-\n", "").replace('\n', " ");
    if line.contains('&') {
        line = line.replace("&quot;", "\"").replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">");
    }
    // ([\{-\~\[-\` -\&\(-\+\:-\@\/]) -> ' \1 '
    let is_punct = |c: char| matches!(c, '{'..='~' | '['..='`' | ' '..='&' | '('..='+' | ':'..='@' | '/');
    let mut a: Vec<char> = Vec::with_capacity(line.len() * 2 + 2);
    a.push(' ');
    for c in line.chars() {
        if is_punct(c) {
            a.extend([' ', c, ' ']);
        } else {
            a.push(c);
        }
    }
    a.push(' ');
    let digit = |c: char| c.is_ascii_digit();
    let period_comma = |c: char| c == '.' || c == ',';
    let mut b = Vec::with_capacity(a.len() + 16);
    // ([^0-9])([\.,]) -> '\1 \2 '
    sub2(&a, |c| !digit(c), period_comma, &mut b, |x, y, o| o.extend([x, ' ', y, ' ']));
    // ([\.,])([^0-9]) -> ' \1 \2'
    sub2(&b, period_comma, |c| !digit(c), &mut a, |x, y, o| o.extend([' ', x, ' ', y]));
    // ([0-9])(-) -> '\1 \2 '
    sub2(&a, digit, |c| c == '-', &mut b, |x, y, o| o.extend([x, ' ', y, ' ']));
    let s: String = b.into_iter().collect();
    match whitespace {
        Whitespace::Python => py_split(&s).map(str::to_string).collect(),
        Whitespace::Perl => s.split_whitespace().map(str::to_string).collect(),
    }
}

/// The Fx hash (rustc's FxHasher: multiply-rotate per word). Not DoS-resistant, which does not matter for
/// n-gram tables, and much cheaper than SipHash, notably in unoptimised builds.
#[derive(Debug, Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

impl FxHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]));
        }
        for &b in chunks.remainder() {
            self.add(u64::from(b));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_u128(&mut self, i: u128) {
        self.add(i as u64);
        self.add((i >> 64) as u64);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        self.hash
    }
}

/// A `HashMap` with [`FxHasher`].
pub type FxMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<FxHasher>>;
/// A `HashSet` with [`FxHasher`].
pub type FxSet<K> = std::collections::HashSet<K, std::hash::BuildHasherDefault<FxHasher>>;

/// Map tokens to dense integer ids so that n-grams are cheap to hash and compare.
#[derive(Debug, Default)]
pub struct Vocab {
    ids: FxMap<String, u32>,
}

impl Vocab {
    /// The id of `token`, assigning the next free one on first sight.
    pub fn id(&mut self, token: &str) -> u32 {
        if let Some(&id) = self.ids.get(token) {
            return id;
        }
        // n-grams pack 25 bits per id.
        assert!(self.ids.len() < 1 << ID_BITS, "more than 2^25 distinct tokens");
        let id = self.ids.len() as u32;
        self.ids.insert(token.to_string(), id);
        id
    }

    /// The id of `token` if it has one.
    pub fn get(&self, token: &str) -> Option<u32> {
        self.ids.get(token).copied()
    }

    /// Ids of a token sequence.
    pub fn ids<S: AsRef<str>>(&mut self, tokens: &[S]) -> Vec<u32> {
        tokens.iter().map(|t| self.id(t.as_ref())).collect()
    }
}

/// An n-gram of token ids (orders 1..=5) packed into one integer: 25 bits per id, the order in the top 3 bits.
pub type NGram = u128;

/// Bits per token id in an [`NGram`].
const ID_BITS: u32 = 25;

/// Pack `ids` (at most 5, each < 2^25) into an [`NGram`].
pub fn ngram_key(ids: &[u32]) -> NGram {
    debug_assert!(ids.len() <= 5);
    let mut k = (ids.len() as u128) << 125;
    for (i, &id) in ids.iter().enumerate() {
        k |= u128::from(id) << (ID_BITS * i as u32);
    }
    k
}

/// The order (number of tokens) of an [`NGram`].
pub fn ngram_order(k: NGram) -> usize {
    (k >> 125) as usize
}

/// The (n−1)-gram prefix of an n-gram (n ≥ 1; the prefix of a unigram is the empty 0-gram).
pub fn ngram_prefix(k: NGram) -> NGram {
    let n = ngram_order(k);
    let keep = ID_BITS * (n.saturating_sub(1) as u32);
    let ids = k & ((1u128 << keep) - 1);
    ids | ((n.saturating_sub(1) as u128) << 125)
}

/// The first token id of an n-gram.
pub fn ngram_first(k: NGram) -> u32 {
    (k & ((1u128 << ID_BITS) - 1)) as u32
}

/// Counts of all n-grams of orders `1..=max_n` (≤ 5) of `tokens`, in first-occurrence order (orders ascending), so
/// that sums over them are deterministic.
pub fn ngram_counts(tokens: &[u32], max_n: usize) -> Vec<(NGram, u32)> {
    assert!(max_n <= 5, "n-grams are packed for orders up to 5");
    let cap = tokens.len() * max_n;
    let mut index: FxMap<NGram, usize> = FxMap::with_capacity_and_hasher(cap, Default::default());
    let mut counts: Vec<(NGram, u32)> = Vec::with_capacity(cap);
    for n in 1..=max_n {
        for w in tokens.windows(n) {
            let k = ngram_key(w);
            match index.get(&k) {
                Some(&i) => counts[i].1 += 1,
                None => {
                    index.insert(k, counts.len());
                    counts.push((k, 1));
                }
            }
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ngram_packing() {
        let k = ngram_key(&[7, 3, 9]);
        assert_eq!(ngram_order(k), 3);
        assert_eq!(ngram_prefix(k), ngram_key(&[7, 3]));
        assert_eq!(ngram_prefix(ngram_key(&[7])), ngram_key(&[]));
        assert_eq!(ngram_first(k), 7);
        let c = ngram_counts(&[1, 2, 1, 2], 2);
        assert_eq!(
            c,
            vec![(ngram_key(&[1]), 2), (ngram_key(&[2]), 2), (ngram_key(&[1, 2]), 2), (ngram_key(&[2, 1]), 1)]
        );
    }

    fn tok(s: &str) -> Vec<String> {
        tokenize_13a(s, Whitespace::Python)
    }

    #[test]
    fn mteval_13a_rules() {
        // Period/comma split unless between digits; dash split after a digit; entities un-escaped.
        assert_eq!(tok("3.5 and 1,000. a.b x,y"), ["3.5", "and", "1,000", ".", "a", ".", "b", "x", ",", "y"]);
        assert_eq!(tok("5-star well-known 20-25"), ["5", "-", "star", "well-known", "20", "-", "25"]);
        assert_eq!(tok("a &amp; b &quot;c&quot;"), ["a", "&", "b", "\"", "c", "\""]);
        assert_eq!(tok("it's don't"), ["it's", "don't"]);
        assert_eq!(tok("end.."), ["end", ".", "."]);
        assert!(tok("  ").is_empty());
    }

    #[test]
    fn whitespace_classes() {
        // U+001F separates for Python only; U+00A0 for both.
        assert_eq!(tokenize_13a("a\u{1f}b c\u{a0}d", Whitespace::Python), ["a", "b", "c", "d"]);
        assert_eq!(tokenize_13a("a\u{1f}b c\u{a0}d", Whitespace::Perl), ["a\u{1f}b", "c", "d"]);
    }
}
