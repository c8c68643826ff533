//! One module per subcommand; [`run`] dispatches.

mod audit;
mod bench;
mod clip_check;
mod data;
pub mod eval_gen;
mod generate;
mod info;
pub(crate) mod model_io;
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
    match cli.command {
        Command::Info(args) => info::run(&cli.global, &args),
        Command::Data(cmd) => data::run(&cli.global, &cmd),
        Command::Privacy(cmd) => privacy::run(&cmd),
        Command::Score(args) => score::run(&cli.global, &args),
        Command::Generate(args) => generate::run(&cli.global, &args),
        Command::ClipCheck(args) => clip_check::run(&cli.global, &args),
        Command::Train(args) => train::run(&cli.global, &args),
        Command::Audit(args) => audit::run(&cli.global, &args),
        Command::TrainTokenizer(args) => train_tokenizer::run(&cli.global, &args),
        Command::EvalGen(args) => eval_gen::run(&args),
        Command::Sweep(args) => sweep::run(&cli.global, &args),
        Command::Report(args) => report::run(&args),
        Command::Bench(args) => bench::run(&cli.global, &args),
    }
}
