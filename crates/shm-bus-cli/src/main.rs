//! `shm-bus`: see inside a live bus and drive it by hand.
//!
//! Exit codes: 0 success; 1 runtime failure; 2 bad usage or bad input.
//! Every failure prints one line on stderr saying what was wrong.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod topic_cmd;

/// Pattern-routed, zero-copy, crash-safe events between processes.
#[derive(Parser)]
#[command(name = "shm-bus", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse, match, format and check topics.
    #[command(subcommand)]
    Topic(topic_cmd::TopicCommand),
}

/// An error caused by the caller's input: exit code 2.
#[derive(Debug)]
pub(crate) struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Topic(cmd) => topic_cmd::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("shm-bus: {err:#}");
            if err.downcast_ref::<BadInput>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}
