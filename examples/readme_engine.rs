//! The README's EventEngine program: PyEventEngine's API, handlers on a
//! pattern with captures.
//!
//! ```sh
//! cargo run --example readme_engine
//! ```
use std::process::ExitCode;

use shm_bus::engine::{EventEngine, Handler, Message, Wait};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("readme_engine: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    // In-process, as in PyEventEngine; `EventEngine::with_bus(&bus, "worker")`
    // runs the same API over a bus, so handlers fire for other processes' puts.
    let engine = EventEngine::new(1024);
    let on_trade = Handler::new(|m: &Message<'_>| {
        println!(
            "{}: venue {}, {} at {}",
            m.topic(),
            m.capture("venue").unwrap_or("?"),
            m.capture("kind").unwrap_or("?"),
            String::from_utf8_lossy(m.payload()),
        );
    });
    engine.register_handler("md.{venue}.AAPL.+kind", on_trade, false)?;
    engine.put("md.XNAS.AAPL.trade", b"189.98", Wait::default())?;
    engine.put("md.ARCX.AAPL.quote", b"189.97", Wait::default())?;
    // Runs the handlers for what is queued, in this thread. For a dispatch
    // thread: `engine.start()?`, and `engine.stop()` to end it.
    let dispatched = engine.dispatch_pending()?;
    println!("{dispatched} events dispatched");
    Ok(())
}
