//! Training a small byte-level BPE tokenizer on public text (the mini reproduction's vocabulary).

use models::tokenizer::train_byte_level_bpe;

#[test]
fn trains_a_byte_level_bpe_that_round_trips() {
    let Some(data) = models::DataDir::for_tests("pretrain-text") else { return };
    let text = std::fs::read_to_string(data.root().join("pretrain-text/tinyshakespeare.txt")).unwrap();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bpe-512");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let corpus = dir.join("corpus.txt");
    std::fs::write(&corpus, &text[..100_000]).unwrap();
    let tok = train_byte_level_bpe(&[corpus], 512, &dir.join("tok")).unwrap();
    assert_eq!(tok.vocab_size(), 512);
    assert_eq!(tok.token_to_id("<|endoftext|>"), Some(0));
    for s in ["First Citizen: Before we proceed any further, hear me speak.", "naïve café — 2026 <|endoftext|>"] {
        let ids = tok.encode(s, false).unwrap();
        assert!(ids.iter().all(|&i| (0..512).contains(&i)));
        assert_eq!(tok.decode(&ids, false).unwrap(), s);
    }
    // Merges were learnt: common English compresses below one token per byte.
    let ids = tok.encode(&text[200_000..201_000], false).unwrap();
    assert!(ids.len() < 600, "{} tokens for 1000 bytes", ids.len());
    assert!(train_byte_level_bpe(&[dir.join("missing.txt")], 512, &dir.join("x")).is_err());
}
