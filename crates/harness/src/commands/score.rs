//! `dpft score`: per-token log-probabilities of texts under a causal language model.

use anyhow::Result;
use dp_core::engine::Tape;
use models::Inputs;
use tch::{Kind, Tensor};

use super::model_io::{input_error, load_options};
use crate::cli::{GlobalArgs, ScoreArgs};
use crate::exit::BadInput;

/// One scored text.
#[derive(serde::Serialize)]
struct Scored {
    text: String,
    tokens: Vec<i64>,
    logprobs: Vec<f64>,
    nll: f64,
}

pub fn run(global: &GlobalArgs, args: &ScoreArgs) -> Result<()> {
    let opts = load_options(global, args.model.dtype)?;
    let (model, tokenizer) = super::model_io::load_causal(&args.model, &opts)?;
    let _guard = tch::no_grad_guard();
    let mut out = Vec::with_capacity(args.text.len());
    for text in &args.text {
        let tokens = tokenizer.encode(text, false).map_err(input_error)?;
        if tokens.is_empty() {
            return Err(BadInput(format!("--text {text:?} has no tokens")).into());
        }
        if tokens.len() < 2 {
            return Err(BadInput(format!(
                "--text {text:?} is one token: nothing is predicted (the first token has no context to score it from); give a text of at least 2 tokens"
            ))
            .into());
        }
        if tokens.len() as i64 > model.text_positions() {
            return Err(BadInput(format!(
                "--text {text:?} has {} tokens; the model takes at most {} (n_positions)",
                tokens.len(),
                model.text_positions()
            ))
            .into());
        }
        let ids = Tensor::from_slice(&tokens).to(opts.device).unsqueeze(0); // [1, T]
        let logits = model.forward(Inputs::ids(&ids), None, false, &mut Tape::off()).map_err(input_error)?; // [1, T, V]
        let t = tokens.len() as i64;
        let lp = logits.narrow(1, 0, t - 1).to_kind(Kind::Double).log_softmax(-1, Kind::Double); // [1, T−1, V]
        let next = ids.narrow(1, 1, t - 1).unsqueeze(-1); // [1, T−1, 1]
        let logprobs: Vec<f64> = Vec::try_from(lp.gather(-1, &next, false).reshape([-1]))?;
        let nll = -logprobs.iter().sum::<f64>();
        out.push(Scored { text: text.clone(), tokens, logprobs, nll });
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    for s in &out {
        println!(
            "{:?}: {} tokens, nll {:.6} (mean {:.6} per predicted token)",
            s.text,
            s.tokens.len(),
            s.nll,
            s.nll / s.logprobs.len() as f64
        );
        for (i, (&id, lp)) in s.tokens.iter().zip(std::iter::once(None).chain(s.logprobs.iter().map(Some))).enumerate()
        {
            let piece = tokenizer.decode(&[id], false).unwrap_or_default();
            match lp {
                Some(lp) => println!("  {i:>4}  {id:>6}  {piece:<16?} {lp:>12.6}"),
                None => println!("  {i:>4}  {id:>6}  {piece:<16?} {:>12}", "-"),
            }
        }
    }
    Ok(())
}
