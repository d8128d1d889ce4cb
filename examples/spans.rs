//! numba-style events between processes: this process times spans that a
//! child process emits, and hears the bus tell when the child's subscriber
//! attaches and when the child dies.
//!
//! ```sh
//! cargo run --example spans
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use shm_bus::events::{
    self, EventBridge, Listeners, RecordingListener, SUBSCRIBER_KIND, TimingListener,
};
use shm_bus::{Bus, BusConfig};

fn main() -> std::process::ExitCode {
    // Errors print as sentences (their Display), not as debug structures.
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spans: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    if let Some(bus) = std::env::args().nth(1) {
        return child(&bus);
    }
    let name = format!("spans-{}", std::process::id());
    let bus = Bus::create(&name, BusConfig::default())?;
    let result = parent(&bus, &name);
    drop(bus);
    Bus::remove(&name)?;
    result
}

/// Listens: a timer and a recorder for the child's spans, a recorder for
/// subscribers coming and going.
fn parent(bus: &Bus, name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let listeners = Listeners::new();
    let timer = Arc::new(TimingListener::new());
    let spans = Arc::new(RecordingListener::new());
    let members = Arc::new(RecordingListener::new());
    listeners.register("work:compile", timer.clone())?;
    listeners.register("work:compile", spans.clone())?;
    listeners.register(SUBSCRIBER_KIND, members.clone())?;
    let _bridge = EventBridge::connect_with(bus, &listeners)?;

    let mut child = std::process::Command::new(std::env::current_exe()?)
        .arg(name)
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while spans.len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    println!(
        "timed the child's span: {:?} (by the child's clock)",
        timer.duration().ok_or("no span arrived")?
    );
    child.kill()?; // SIGKILL: the bus notices the death
    child.wait()?;
    while members.events().iter().all(|e| !e.is_failed()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    for event in members.events() {
        let who = event.lifecycle().ok_or("lifecycle data")?;
        println!(
            "{:?} subscriber `{}` (pid {}){}",
            event.status(),
            who.name,
            who.pid,
            event
                .failure()
                .map(|f| format!(": {f}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// Emits one span, then attaches a subscriber and waits to be killed.
fn child(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let bus = Bus::open(name)?;
    let _bridge = EventBridge::connect(&bus)?;
    {
        let _span = events::trigger_event("work:compile", b"module a".to_vec())?;
        std::thread::sleep(Duration::from_millis(30));
    }
    let _subscriber = bus.subscriber("child-worker")?;
    std::thread::sleep(Duration::from_secs(30));
    Ok(())
}
