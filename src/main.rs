//! `airlock`: parse the command line, run, print the whole error chain, exit with a code a
//! script can trust (see `cli::exit`).

use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::init_tracing();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("airlock: {e:#}");
            }
            cli::exit::code_for(&e)
        }
    }
}
