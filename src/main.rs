//! `airlock`: parse the command line, run, print the whole error chain, exit with a code a
//! script can trust (see `cli::exit`).

use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    // `serve` logs each AssumeRole at info (stderr is the client's log); the commands a person
    // runs only log warnings unless asked, so their own output stays readable.
    let serve = matches!(args.command, cli::Command::Serve(_));
    cli::init_tracing(if serve {
        "airlock=info,warn"
    } else {
        "airlock=warn"
    });
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
