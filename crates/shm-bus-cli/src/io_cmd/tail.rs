//! `shm-bus tail`: print events as they arrive (text, hex or JSON Lines).
//!
//! By default a payload that is printable UTF-8 shows as text and any
//! other as hex, shortened when long; `--format` forces one way.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Result;
use serde_json::{Value, json};
use shm_bus_core::{RecvError, Sample, Start};

use super::{WAIT_SLICE, bus_removed, check_patterns, subscribe, warn_near_misses};
use crate::bus_cmd::check_name;
use crate::common;
use crate::os::{catch_interrupts, interrupted, stdout_closed};
use crate::{TailArgs, TailFormat};

pub(crate) fn tail(a: &TailArgs) -> Result<ExitCode> {
    check_name(&a.bus)?;
    let patterns = if a.patterns.is_empty() {
        vec!["**".to_owned()]
    } else {
        a.patterns.clone()
    };
    check_patterns(&patterns)?;
    let format = if a.json {
        Some(TailFormat::Json)
    } else {
        a.format
    };
    warn_near_misses("tail", "pattern", patterns.iter().map(String::as_str));
    let bus = common::attach(&a.bus, a.create)?;
    let start = if a.from_oldest {
        Start::Oldest
    } else {
        Start::Now
    };
    let mut sub = subscribe(&bus, "shm-bus tail", &patterns, start)?;
    catch_interrupts();

    let mut out = io::stdout().lock();
    let mut shown: u64 = 0;
    let mut line = String::new();
    while a.count.is_none_or(|n| shown < n) && !interrupted() {
        match sub.recv_timeout(WAIT_SLICE) {
            Ok(sample) => {
                line.clear();
                format_event(&sample, format, &mut line);
                // Release the ring space before a possibly slow write.
                drop(sample);
                line.push('\n');
                match out.write_all(line.as_bytes()).and_then(|()| out.flush()) {
                    Ok(()) => shown += 1,
                    // The reader went away (`| head`): that is the end.
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => break,
                    Err(e) => return Err(anyhow::Error::new(e).context("cannot write to stdout")),
                }
            }
            Err(RecvError::Timeout | RecvError::Empty) => {
                if stdout_closed() {
                    break;
                }
            }
            Err(RecvError::Lagged(n)) => {
                eprintln!("shm-bus: tail: lagged, {n} event(s) overwritten before they were read");
            }
            Err(RecvError::BusRemoved) => return Err(bus_removed(&a.bus, "tail")),
            Err(e) => eprintln!("shm-bus: tail: {e} (that producer's ring is skipped from now on)"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Hex payloads longer than this are shortened by default.
const HEX_SHOWN: usize = 32;

/// One event as `tail` prints it (without the newline); `None`: text or
/// hex, whichever suits the payload.
fn format_event(s: &Sample<'_>, format: Option<TailFormat>, out: &mut String) {
    use std::fmt::Write as _;
    let p = s.payload();
    match format {
        None => {
            let _ = write!(
                out,
                "{}  producer={} seq={} size={}  ",
                s.topic(),
                s.producer(),
                s.sequence(),
                s.len()
            );
            auto_payload(p, out);
        }
        Some(format @ (TailFormat::Text | TailFormat::Hex)) => {
            let _ = write!(
                out,
                "{}  producer={} seq={} size={}  ",
                s.topic(),
                s.producer(),
                s.sequence(),
                s.len()
            );
            if format == TailFormat::Text {
                escape_text(&String::from_utf8_lossy(p), out);
            } else {
                hex(p, out);
            }
        }
        Some(TailFormat::Json) => {
            let mut v = json!({
                "topic": s.topic(),
                "producer": s.producer(),
                "sequence": s.sequence(),
                "size": s.len(),
                "timestamp_ns": s.timestamp_ns(),
            });
            match std::str::from_utf8(p) {
                Ok(text) => v["payload"] = Value::from(text),
                Err(_) => {
                    let mut h = String::with_capacity(p.len() * 2);
                    hex(p, &mut h);
                    v["payload_hex"] = Value::from(h);
                }
            }
            let _ = write!(out, "{v}");
        }
    }
}

/// A payload as text if it is printable UTF-8 (tabs and line breaks
/// allowed, escaped), else as hex: in full up to [`HEX_SHOWN`] bytes, then
/// the first [`HEX_SHOWN`] and how many more.
fn auto_payload(p: &[u8], out: &mut String) {
    use std::fmt::Write as _;
    match std::str::from_utf8(p) {
        Ok(text)
            if text
                .chars()
                .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r')) =>
        {
            escape_text(text, out);
        }
        _ if p.len() <= HEX_SHOWN => {
            out.push_str("hex:");
            hex(p, out);
        }
        _ => {
            out.push_str("hex:");
            hex(&p[..HEX_SHOWN], out);
            let _ = write!(out, "… (+{} bytes)", p.len() - HEX_SHOWN);
        }
    }
}

/// Text with control characters and `\` escaped, so one event is one line.
fn escape_text(text: &str, out: &mut String) {
    use std::fmt::Write as _;
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// Lowercase hex digits of `bytes`.
fn hex(bytes: &[u8], out: &mut String) {
    use std::fmt::Write as _;
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_escapes_control_characters() {
        let mut s = String::new();
        escape_text("a\tb\nc\\d\u{1b}é", &mut s);
        assert_eq!(s, "a\\tb\\nc\\\\d\\u{1b}é");
    }

    #[test]
    fn auto_shows_text_or_hex() {
        let mut s = String::new();
        auto_payload(b"price=1.5\tok", &mut s);
        assert_eq!(s, "price=1.5\\tok");
        s.clear();
        auto_payload(&[0, 1, 0xff], &mut s);
        assert_eq!(s, "hex:0001ff");
        s.clear();
        auto_payload(b"bell\x07", &mut s);
        assert_eq!(s, "hex:62656c6c07");
        s.clear();
        auto_payload(&[0xab; 40], &mut s);
        assert_eq!(s, format!("hex:{}… (+8 bytes)", "ab".repeat(32)));
    }

    #[test]
    fn hex_is_lowercase_pairs() {
        let mut s = String::new();
        hex(&[0, 0xab, 0x10], &mut s);
        assert_eq!(s, "00ab10");
    }
}
