//! `dpft`: differentially private fine-tuning of language models (Li et al., ICLR 2022), from the command line.
//!
//! Exit status: 0 on success, 2 for bad usage or input (unknown flags, malformed or missing files,
//! out-of-range values, a device that is not there), 1 for a failure at run time.

mod allocator;
mod audit;
mod bench;
mod cli;
mod commands;
mod exit;
mod gen_metrics;
mod lock;
mod logging;
mod memory_guard;
mod report;
mod run_config;
mod sweep;
mod tasks;
mod train;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    if matches!(
        cli.command,
        cli::Command::Train(_)
            | cli::Command::Generate(_)
            | cli::Command::Score(_)
            | cli::Command::ClipCheck(_)
            | cli::Command::Bench(_)
    ) {
        allocator::tune();
    }
    logging::init(cli.global.verbosity());
    let lower = cli.command.sizes_to_lower();
    match memory_guard::guard(lower, || commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => exit::report(&err),
    }
}
