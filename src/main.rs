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
    // Rust ignores SIGPIPE, so printing to a closed pipe (`airlock requests list | head`)
    // panics ("failed printing to stdout: Broken pipe", exit 101). The commands a person or a
    // script runs take the default action instead: end quietly, like any Unix tool. Not
    // `serve`: its stdout is the MCP stream, and a closed stream is an error it handles (the
    // session ends) rather than a signal that kills it mid-call.
    if !serve {
        // SAFETY: called first thing in main, before any thread is started; restoring the
        // default disposition of one signal touches no Rust state.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
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
