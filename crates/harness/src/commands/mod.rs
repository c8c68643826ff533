//! One module per subcommand; [`run`] dispatches.

mod clip_check;
mod data;
pub mod eval_gen;
mod generate;
mod info;
mod model_io;
mod privacy;
mod report;
mod score;
mod sweep;
mod train;
mod train_tokenizer;

use anyhow::Result;

use crate::cli::{Cli, Command};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    let name = cli.command.name();
    match cli.command {
        Command::Info(args) => info::run(&cli.global, &args),
        Command::Data(cmd) => data::run(&cli.global, &cmd),
        Command::Privacy(cmd) => privacy::run(&cmd),
        Command::Score(args) => score::run(&cli.global, &args),
        Command::Generate(args) => generate::run(&cli.global, &args),
        Command::ClipCheck(args) => clip_check::run(&cli.global, &args),
        Command::Train(args) => train::run(&cli.global, &args),
        Command::TrainTokenizer(args) => train_tokenizer::run(&cli.global, &args),
        Command::EvalGen(args) => eval_gen::run(&args),
        Command::Sweep(args) => sweep::run(&cli.global, &args),
        Command::Report(args) => report::run(&args),
        Command::Bench(_) => Err(anyhow::anyhow!(
            "`dpft {name}` is not available yet in dpft {}: nothing was run. The README's \"Status\" section \
             lists what works so far.",
            env!("CARGO_PKG_VERSION")
        )),
    }
}
