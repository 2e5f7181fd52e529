//! The `routeplane` binary: parse the command line, run the command, print the one error.

mod cmd;

use std::io;
use std::process::ExitCode;

fn main() -> ExitCode {
    match cmd::run(std::env::args_os().skip(1).collect()) {
        Ok(code) => code,
        // The reader of stdout stopped reading (`| head -1`): it has what it wanted, so
        // this is not a failure, as for other Unix tools (ripgrep's main says the same).
        Err(routeplane::Error::Io { source, .. }) if source.kind() == io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("routeplane: error: {e}");
            match e {
                routeplane::Error::Usage(_) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}
