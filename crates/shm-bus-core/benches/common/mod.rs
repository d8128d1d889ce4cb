//! The harness shared by the `instructions*` benches: each bench binary
//! holds one workload (so the compiler inlines the bus's receive path into
//! it as it would into a program with one receive loop), runs itself under
//! `valgrind --tool=callgrind` for N and 2N messages, and prints
//! `(I(2N) - I(N)) / N`: start-up, bus creation and teardown cancel out.

use std::process::{Command, ExitCode};

use shm_bus_core::{Bus, BusConfig};

/// Messages of the shorter run (the longer one runs twice as many).
const N: u64 = 200_000;
/// The environment variable that makes a bench binary run its workload.
const ROLE: &str = "SHM_BUS_INSTRUCTIONS_N";

pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Instructions callgrind counts for this binary running its workload on
/// `n` messages.
fn count(n: u64) -> Result<u64> {
    let exe = std::env::current_exe()?;
    let out = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(&exe)
        .env(ROLE, n.to_string())
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("valgrind failed: {stderr}").into());
    }
    let refs = stderr
        .lines()
        .find_map(|l| l.split("I   refs:").nth(1))
        .ok_or_else(|| format!("no instruction count in valgrind's output: {stderr}"))?;
    Ok(refs.trim().replace(',', "").parse()?)
}

/// The bench's `main`: under valgrind (the role variable set), runs
/// `workload` for that many messages on a bus of its own; otherwise
/// measures it and prints `label: instructions`. Without valgrind it
/// says so and succeeds.
pub fn main(label: &str, workload: fn(&Bus, u64) -> Result<u64>) -> ExitCode {
    if let Ok(n) = std::env::var(ROLE) {
        let Ok(n) = n.parse::<u64>() else {
            eprintln!("bad {ROLE}: {n}");
            return ExitCode::from(2);
        };
        let bus_name = format!("instructions-{}", std::process::id());
        let result = Bus::create(&bus_name, BusConfig::default())
            .map_err(Into::into)
            .and_then(|bus| {
                let r = workload(&bus, n);
                Bus::remove(&bus_name)?;
                r
            });
        return match result {
            Ok(sum) => {
                println!("{sum}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{label}: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // `cargo bench` passes `--bench` (and maybe a filter): accepted, unused.
    if Command::new("valgrind").arg("--version").output().is_err() {
        println!("valgrind not installed: {label}: skipped");
        return ExitCode::SUCCESS;
    }
    let per = count(N).and_then(|small| Ok(count(2 * N)?.saturating_sub(small) / N));
    match per {
        Ok(per) => {
            println!("{label}: {per}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{label}: {e}");
            ExitCode::FAILURE
        }
    }
}
