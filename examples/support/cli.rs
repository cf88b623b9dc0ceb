//! The command-line frame of the examples that take arguments: the usage on
//! a bad argument (exit status 2), the error when the run fails (1).

use std::future::Future;
use std::process::ExitCode;

use tower_sse::BoxError;

/// Runs `run` with the parsed arguments. An `Err` from parsing prints its
/// message (when not empty: `--help` has none) and `usage`.
pub(crate) async fn run_main<A, F>(
    args: Result<A, String>,
    usage: &str,
    run: impl FnOnce(A) -> F,
) -> ExitCode
where
    F: Future<Output = Result<(), BoxError>>,
{
    let args = match args {
        Ok(args) => args,
        Err(error) => {
            if !error.is_empty() {
                eprintln!("error: {error}");
            }
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
