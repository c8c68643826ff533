"""NIST (N=5) as e2e-metrics computes it: `mteval-v13a-sig.pl` on the SGML files `measure_scores.py` writes.

Written from the Perl source (subs `tokenization`, `compute_ngram_info`, `score_segment`, `nist_score`,
`nist_length_penalty`; github.com/tuetschek/e2e-metrics, mteval/mteval-v13a-sig.pl), not from NLTK: NLTK's
`corpus_nist` uses other information weights and length terms and gives e.g. 7.41 where mteval gives 8.58.

Definition
----------
Tokenisation (mteval-v13a, `tokenization`): drop `<skipped>`, join `-\\n`, newlines to spaces, un-escape
`&quot; &amp; &lt; &gt;`, pad with spaces, lower-case ASCII only (`tr/[A-Z]/[a-z]/`), then

    s/([\\{-\\~\\[-\\` -\\&\\(-\\+\\:-\\@\\/])/ $1 /g      space out punctuation and symbols
    s/([^0-9])([\\.,])/$1 $2 /g                   period/comma unless preceded by a digit
    s/([\\.,])([^0-9])/ $1 $2/g                   period/comma unless followed by a digit
    s/([0-9])(-)/$1 $2 /g                        dash after a digit

and split on Perl's `\\s` (Unicode White_Space).

Information weights, from the counts C(.) of all n-grams (n <= 5 used) over every reference of every segment,
and W = the total number of reference words:

    info(w_1..w_n) = -log2( C(w_1..w_n) / C(w_1..w_{n-1}) )   for n >= 2
    info(w_1)      = -log2( C(w_1) / W )

(Perl quirk, kept: `$mgram ? ... : ...` treats the prefix string "0" as false, so a bigram whose first token is
"0" is also divided by W.)

Per segment, with c_hyp(g) the hypothesis counts and m(g) = max over the segment's references of c_ref(g):

    I_n += sum over hypothesis n-grams g with m(g) > 0 of info(g) * min(c_hyp(g), m(g))
    L_n += max(0, |hyp| - n + 1)

Score:

    NIST = LP * sum_{n=1..5} I_n / max(L_n, 1)
    LP   = exp(-beta * ln(ratio)^2) for 0 < ratio < 1, 1 for ratio >= 1, 0 for ratio <= 0
    beta = -ln(0.5) / ln(1.5)^2          (LP = 0.5 at ratio 2/3)
    ratio = L_1 / (W / nsys)

`nsys` is the number of reference "systems" of the SGML file. e2e-metrics writes one per reference index and pads
segments that have fewer references with empty ones, so nsys = the largest reference count of any segment
(`ref_length="mteval_padded"`). e2e-metrics' Python port (pymteval, `--python`) instead uses the sum over
segments of the mean reference length (`ref_length="mean_per_segment"`).

Used by python/tests/test_metrics.py against crates/metrics (tolerance 1e-9 relative).
Run: .venv/bin/python python/oracles/nist_reference.py REFS PRED   (e2e-metrics text formats)
"""

import math
import re
import sys
from collections import Counter

_PUNCT = re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])")
_PERIOD_COMMA_1 = re.compile(r"([^0-9])([\.,])")
_PERIOD_COMMA_2 = re.compile(r"([\.,])([^0-9])")
_DASH = re.compile(r"([0-9])(-)")
# Perl's \s on character strings: Unicode White_Space (no U+001C..U+001F, unlike Python's str.split()).
_PERL_SPACE = re.compile("[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")

MAX_N = 5
BETA = -math.log(0.5) / math.log(1.5) / math.log(1.5)


def tokenize(text):
    """mteval-v13a `tokenization` (default, not international), ASCII lower-casing."""
    t = text.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    t = t.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    t = " " + t + " "
    t = t.translate({c: c + 32 for c in range(ord("A"), ord("Z") + 1)})
    t = _PUNCT.sub(r" \1 ", t)
    t = _PERIOD_COMMA_1.sub(r"\1 \2 ", t)
    t = _PERIOD_COMMA_2.sub(r" \1 \2", t)
    t = _DASH.sub(r"\1 \2 ", t)
    return [w for w in _PERL_SPACE.split(t) if w]


def ngrams(words, max_n=MAX_N):
    """Perl `Words2Ngrams` (counts of all n-grams up to max_n), keys are tuples."""
    c = Counter()
    for i in range(len(words)):
        for n in range(1, max_n + 1):
            if i + n <= len(words):
                c[tuple(words[i:i + n])] += 1
    return c


def length_penalty(ratio):
    if ratio >= 1:
        return 1.0
    if ratio <= 0:
        return 0.0
    return math.exp(-BETA * math.log(ratio) * math.log(ratio))


class NistReferences:
    """The reference side (information weights, per-segment maximum counts, lengths) for several systems."""

    def __init__(self, refs):
        self.ref_toks = [[tokenize(r) for r in rs] for rs in refs]
        self.counts = Counter()
        self.total_words = 0
        self.ref_max = []
        self.mean_ref_len = 0.0
        for rs in self.ref_toks:
            seg_max = Counter()
            for r in rs:
                self.total_words += len(r)
                c = ngrams(r)
                self.counts.update(c)
                for g, k in c.items():
                    seg_max[g] = max(seg_max[g], k)
            self.ref_max.append(seg_max)
            self.mean_ref_len += sum(len(r) for r in rs) / len(rs)
        self.nsys = max(len(rs) for rs in refs)

    def info(self, g):
        prefix = g[:-1]
        if len(prefix) == 0 or prefix == ("0",):  # Perl: "" and "0" are false
            denom = self.total_words
        else:
            denom = self.counts[prefix]
        return -math.log(self.counts[g] / denom) / math.log(2)

    def score(self, hyps, ref_length="mteval_padded"):
        assert len(hyps) == len(self.ref_toks)
        matched_info = [0.0] * MAX_N
        sys_ngrams = [0] * MAX_N
        for h, ref_max in zip((tokenize(h) for h in hyps), self.ref_max):
            for n in range(1, MAX_N + 1):
                sys_ngrams[n - 1] += max(0, len(h) - n + 1)
            for g, c in ngrams(h).items():
                if ref_max[g] > 0:
                    matched_info[len(g) - 1] += self.info(g) * min(c, ref_max[g])
        if ref_length == "mteval_padded":
            avg_ref_len = self.total_words / self.nsys
        elif ref_length == "mean_per_segment":
            avg_ref_len = self.mean_ref_len
        else:
            raise ValueError(ref_length)
        lp = length_penalty(sys_ngrams[0] / avg_ref_len)
        return lp * sum(i / max(n, 1) for i, n in zip(matched_info, sys_ngrams))


def corpus_nist(hyps, refs, ref_length="mteval_padded"):
    """NIST-5 of hypotheses `hyps` (strings) against `refs` (one list of reference strings per hypothesis)."""
    assert len(hyps) == len(refs)
    return NistReferences(refs).score(hyps, ref_length)


def read_references(path):
    """e2e-metrics multi-reference text format (blank-line separated segments)."""
    segs, cur = [], []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line:
                cur.append(line)
            elif cur:
                segs.append(cur)
                cur = []
    if cur:
        segs.append(cur)
    return segs


if __name__ == "__main__":
    refs_path, pred_path = sys.argv[1:3]
    refs = read_references(refs_path)
    with open(pred_path, encoding="utf-8") as fh:
        preds = [line.strip() for line in fh]
    print(f"NIST (mteval, padded nsys): {corpus_nist(preds, refs):.10f}")
    print(f"NIST (pymteval mean ref length): {corpus_nist(preds, refs, 'mean_per_segment'):.10f}")
