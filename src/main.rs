//! The `routeplane` binary: parse the command line, run the command, print the one error.

mod cmd;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cmd::run(std::env::args_os().skip(1).collect()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("routeplane: error: {e}");
            match e {
                routeplane::Error::Usage(_) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}
