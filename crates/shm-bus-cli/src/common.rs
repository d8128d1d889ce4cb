//! What the commands share: exit codes, error classification, opening a
//! bus, durations from flags. (Ctrl-C is in [`crate::os`].)

use shm_bus_core::{Bus, BusConfig, BusError, PublishError};

use crate::CreateArgs;

/// An error caused by the caller's input: exit code 2.
#[derive(Debug)]
pub(crate) struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// Whether a bus error was caused by the caller's input.
fn bus_error_is_input(e: &BusError) -> bool {
    matches!(
        e,
        BusError::InvalidTopic(_)
            | BusError::NotExact { .. }
            | BusError::TopicTooLong { .. }
            | BusError::InvalidConfig(_)
            | BusError::UnknownTopic(_)
            | BusError::InvalidGroupName { .. }
            | BusError::GroupPatternMismatch { .. }
            | BusError::GroupModeMismatch { .. }
            | BusError::GroupPatternsTooLong { .. }
    )
}

/// Exit code of an error: 2 for bad input, 1 otherwise.
pub(crate) fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.downcast_ref::<BadInput>().is_some() {
            return 2;
        }
        if let Some(e) = cause.downcast_ref::<BusError>() {
            return if bus_error_is_input(e) { 2 } else { 1 };
        }
        if let Some(PublishError::Topic(e)) = cause.downcast_ref::<PublishError>() {
            return if bus_error_is_input(e) { 2 } else { 1 };
        }
        if let Some(PublishError::PayloadTooLarge { .. }) = cause.downcast_ref::<PublishError>() {
            return 2;
        }
    }
    1
}

/// The error and its causes on one line.
pub(crate) fn one_line(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ").replace('\n', " ")
}

/// The configuration `create` builds from its flags.
pub(crate) fn config_of(a: &CreateArgs) -> Result<BusConfig, BadInput> {
    let mode = u32::from_str_radix(&a.mode, 8).map_err(|_| {
        BadInput(format!(
            "--mode `{}` is not an octal number like 600",
            a.mode
        ))
    })?;
    let config = BusConfig::default()
        .with_ring_bytes(a.ring_bytes)
        .with_max_subscribers(a.max_subscribers)
        .with_max_producers(a.max_producers)
        .with_max_topics(a.max_topics)
        .with_policy(a.policy)
        .with_history_bytes(a.history)
        .with_mode(mode)
        .with_max_groups(a.max_groups)
        .with_max_group_members(a.max_group_members);
    config.validate().map_err(|e| BadInput(e.to_string()))?;
    Ok(config)
}

/// Refuses a worker-group name the bus would refuse (the core's rule:
/// 1 to 32 bytes of letters, digits, `_ - . :`), before any bus is opened.
pub(crate) fn check_group_name(group: &str) -> Result<(), BadInput> {
    shm_bus_core::check_group_name(group).map_err(|e| BadInput(e.to_string()))
}

/// The error of a bus that does not exist, with the two ways out.
pub(crate) fn missing_bus(name: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "bus `{name}` does not exist: create it with `shm-bus create {name}`, or pass --create"
    )
}

/// Creates `name` with default settings for `--create`, saying so on
/// stderr; if someone else created it meanwhile, opens theirs (silently).
pub(crate) fn create_default(name: &str) -> anyhow::Result<Bus> {
    let config = BusConfig::default();
    match Bus::create(name, config) {
        Ok(bus) => {
            eprintln!("shm-bus: created bus `{name}` ({})", describe(&config));
            Ok(bus)
        }
        Err(BusError::Segment(shm_bus_alloc::Error::AlreadyExists { .. })) => Bus::open(name)
            .map_err(|e| anyhow::Error::new(e).context(format!("cannot open bus `{name}`"))),
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot create bus `{name}`"))),
    }
}

/// A configuration in words, for the `--create` note.
fn describe(c: &BusConfig) -> String {
    format!(
        "{} ring per producer, {} producers, {} subscribers, {} topics, policy {}",
        crate::format::human_bytes(c.ring_bytes),
        c.max_producers,
        c.max_subscribers,
        c.max_topics,
        c.policy
    )
}

/// Opens `name` for `consume` and `tail`. A missing bus is an error with a
/// hint, unless `create` (`--create`): then it is created with defaults.
pub(crate) fn attach(name: &str, create: bool) -> anyhow::Result<Bus> {
    match Bus::open(name) {
        Ok(bus) => Ok(bus),
        Err(BusError::Segment(shm_bus_alloc::Error::NotFound { .. })) if create => {
            create_default(name)
        }
        Err(BusError::Segment(shm_bus_alloc::Error::NotFound { .. })) => Err(missing_bus(name)),
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot open bus `{name}`"))),
    }
}

/// Seconds (from a flag) as a `Duration`, refusing negative or absurd
/// values.
pub(crate) fn seconds(flag: &str, secs: f64) -> Result<std::time::Duration, BadInput> {
    std::time::Duration::try_from_secs_f64(secs)
        .map_err(|_| BadInput(format!("--{flag} {secs} is not a valid number of seconds")))
}

/// Parses a duration flag: seconds (`2`, `0.5`) or a number with a unit
/// `ms`, `s`, `m` or `h` (`500ms`, `30s`, `10m`, `1h`). Zero, negative,
/// not-a-number and absurd values are refused.
pub(crate) fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let digits = t.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let scale = match &t[digits.len()..] {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        unit => {
            return Err(format!(
                "unknown unit `{unit}` (use seconds, or ms, s, m or h: 500ms, 30s, 10m)"
            ));
        }
    };
    let n: f64 = digits
        .parse()
        .map_err(|_| "not a duration (seconds, or 500ms, 30s, 10m, 1h)".to_owned())?;
    if n.is_nan() || n <= 0.0 {
        return Err("a duration must be positive".to_owned());
    }
    std::time::Duration::try_from_secs_f64(n * scale)
        .ok()
        .filter(|d| d.as_secs() < 100 * 365 * 86_400)
        .ok_or_else(|| "too long".to_owned())
}

/// Parses a size flag: a positive whole number of bytes, optionally with a
/// `K`, `M` or `G` suffix (powers of 1024; `KiB`/`MiB`/`GiB` and
/// lower case are accepted too): `4096`, `64K`, `1M`, `1G`.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if t.starts_with('-') {
        return Err("a size must be positive".to_owned());
    }
    let digits = t.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &t[digits.len()..];
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        _ => {
            return Err(format!(
                "unknown size suffix `{unit}` (use K, M or G, powers of 1024)"
            ));
        }
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| "not a size (a whole number, e.g. 4096, 64K, 1M)".to_owned())?;
    if n == 0 {
        return Err("a size must be positive".to_owned());
    }
    n.checked_mul(1 << shift)
        .ok_or_else(|| "too large".to_owned())
}

/// [`parse_size`] for flags where 0 means "none".
pub(crate) fn parse_size_or_zero(text: &str) -> Result<u64, String> {
    if text.trim() == "0" {
        return Ok(0);
    }
    parse_size(text)
}

/// [`parse_size`] for flags held as `usize`.
pub(crate) fn parse_size_usize(text: &str) -> Result<usize, String> {
    let n = parse_size(text)?;
    usize::try_from(n).map_err(|_| "too large".to_owned())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{parse_duration, parse_size};

    #[test]
    fn durations_take_units_and_must_be_positive() {
        for (text, want) in [
            ("2", Duration::from_secs(2)),
            ("0.5", Duration::from_millis(500)),
            ("500ms", Duration::from_millis(500)),
            ("30s", Duration::from_secs(30)),
            ("10m", Duration::from_secs(600)),
            ("1h", Duration::from_secs(3600)),
        ] {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
        for text in ["0", "-1", "0s", "NaN"] {
            assert!(parse_duration(text).is_err(), "{text}");
        }
        assert!(parse_duration("3d").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("1e30").unwrap_err().contains("too long"));
    }

    #[test]
    fn sizes_take_suffixes_and_must_be_positive() {
        for (text, want) in [
            ("4096", 4096),
            ("64K", 64 << 10),
            ("64k", 64 << 10),
            ("1M", 1 << 20),
            ("1MiB", 1 << 20),
            ("1G", 1 << 30),
            ("32b", 32),
        ] {
            assert_eq!(parse_size(text), Ok(want), "{text}");
        }
        for text in ["-5", "0", "0K"] {
            assert!(
                parse_size(text).unwrap_err().contains("must be positive"),
                "{text}"
            );
        }
        assert!(
            parse_size("12Q")
                .unwrap_err()
                .contains("unknown size suffix")
        );
        assert!(parse_size("K").unwrap_err().contains("not a size"));
        assert!(
            parse_size("99999999999G")
                .unwrap_err()
                .contains("too large")
        );
    }
}
