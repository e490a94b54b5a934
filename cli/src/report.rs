//! Printing a library report: one line per check, in the layer's order, then the replay note.
//! The lines only present the report's facts; the verdict is the report's.

use vonage_secure_callbacks::{Check, Rejection, Report, Status};

/// What to print for one check: when it passed, when it failed, and what to do about it.
#[derive(Default)]
pub struct Line {
    pub passed: String,
    pub failed: String,
    pub hint: String,
}

impl Line {
    pub fn new(passed: String, failed: String, hint: &str) -> Self {
        Self {
            passed,
            failed,
            hint: hint.to_owned(),
        }
    }
}

/// Prints every step of `report`, each with the line `line` makes for it.
pub fn print_checks<V>(report: &Report<V>, line: impl Fn(Check) -> Line) {
    println!("checks:");
    for &(check, status) in report.steps() {
        let line = line(check);
        match status {
            Status::Passed => println!("  ok    {check}: {}", line.passed),
            Status::Failed(rejection) => {
                println!("  FAIL  {check}: {} [{}]", line.failed, rejection.code());
                if !line.hint.is_empty() {
                    println!("        -> {}", line.hint);
                }
            }
            Status::NotReached => {
                println!("  --    {check}: not checked (an earlier check failed)")
            }
        }
    }
    println!("  --    replay: not checked here (the layer's replay store decides)");
}

/// The rejection `check` failed with, if it is the one that failed.
pub fn failed<V>(report: &Report<V>, check: Check) -> Option<Rejection> {
    match report.status(check) {
        Status::Failed(rejection) => Some(rejection),
        _ => None,
    }
}

/// Prints the verdict line, `accepted` describing what was verified; true when accepted.
pub fn print_verdict<V>(report: &Report<V>, accepted: impl FnOnce(&V) -> String) -> bool {
    match report.verdict() {
        Ok(verified) => {
            println!("verdict: accepted ({})", accepted(verified));
            true
        }
        Err(rejection) => {
            println!(
                "verdict: refused: {} ({})",
                rejection.code(),
                rejection.status()
            );
            false
        }
    }
}
