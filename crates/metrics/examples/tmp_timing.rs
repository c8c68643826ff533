use std::time::Instant;
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let refs = metrics::read_references_file(a[1].as_ref()).unwrap();
    let preds = metrics::read_predictions_file(a[2].as_ref()).unwrap();
    let t = Instant::now();
    let b = metrics::bleu::corpus_bleu(&preds, &refs);
    eprintln!("bleu {:?} {}", t.elapsed(), b.score);
    let t = Instant::now();
    let n = metrics::nist::corpus_nist(&preds, &refs, Default::default());
    eprintln!("nist {:?} {}", t.elapsed(), n.score);
    let t = Instant::now();
    let flat: Vec<&str> = refs.iter().flatten().map(|s| s.as_str()).collect();
    let pr = metrics::ptb::coco_tokenize(&flat);
    let ph = metrics::ptb::coco_tokenize(&preds);
    eprintln!("ptb {:?}", t.elapsed());
    let mut it = pr.into_iter();
    let prefs: Vec<Vec<String>> = refs.iter().map(|r| it.by_ref().take(r.len()).collect()).collect();
    let t = Instant::now();
    let r = metrics::rouge::rouge_l_coco(&ph, &prefs);
    eprintln!("rouge {:?} {}", t.elapsed(), r.0);
    let t = Instant::now();
    let c = metrics::cider::cider_d(&ph, &prefs);
    eprintln!("cider {:?} {}", t.elapsed(), c.0);
}
