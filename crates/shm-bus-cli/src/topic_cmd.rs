//! `shm-bus topic parse | match | format | check`.

use std::collections::HashMap;
use std::io::{self, BufRead, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::{Map, Value, json};
use shm_bus_topic::{FormatError, Part, Topic, TopicError, match_topics};

use crate::BadInput;

#[derive(Subcommand)]
pub(crate) enum TopicCommand {
    /// Parse a topic and show its parts.
    Parse {
        /// The topic or pattern.
        topic: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Match two topics (symmetric: either may be the pattern).
    Match {
        /// First topic.
        a: String,
        /// Second topic.
        b: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Replace `{name}` wildcards by values.
    Format {
        /// The topic to format.
        topic: String,
        /// Values, as NAME=VALUE.
        #[arg(value_name = "KEY=VALUE")]
        values: Vec<String>,
        /// Every wildcard must get a value.
        #[arg(long)]
        strict: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Answer JSON Lines requests on stdin, one result line per input line.
    ///
    /// Each line is {"op":"parse","topic":S}, {"op":"match","a":S,"b":S} or
    /// {"op":"format","topic":S,"mapping":{..},"strict":BOOL}.
    Check,
}

pub(crate) fn run(cmd: TopicCommand) -> Result<ExitCode> {
    match cmd {
        TopicCommand::Parse { topic, json } => answer(parse_answer(&topic), json, human_parse),
        TopicCommand::Match { a, b, json } => answer(match_answer(&a, &b), json, human_match),
        TopicCommand::Format {
            topic,
            values,
            strict,
            json,
        } => {
            let mut mapping = HashMap::new();
            for kv in &values {
                let (k, v) = kv.split_once('=').ok_or_else(|| {
                    BadInput(format!("`{kv}` is not KEY=VALUE (write e.g. `venue=XNAS`)"))
                })?;
                mapping.insert(k.to_owned(), v.to_owned());
            }
            answer(format_answer(&topic, &mapping, strict), json, human_format)
        }
        TopicCommand::Check => check(io::stdin().lock(), io::stdout().lock()),
    }
}

/// Prints an answer. An `Err` answer is bad input: its JSON (with `--json`)
/// goes to stdout, its message to stderr, and the exit code is 2.
fn answer(
    result: Result<Value, (Value, String)>,
    json: bool,
    human: fn(&Value) -> String,
) -> Result<ExitCode> {
    let mut out = io::stdout().lock();
    match result {
        Ok(value) => {
            if json {
                writeln!(out, "{value}")?;
            } else {
                write!(out, "{}", human(&value))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err((value, message)) => {
            if json {
                writeln!(out, "{value}")?;
            }
            out.flush()?;
            eprintln!("shm-bus: {message}");
            Ok(ExitCode::from(2))
        }
    }
}

fn topic_error(err: &TopicError, text: &str) -> (Value, String) {
    (
        json!({"error": {"kind": err.kind(), "message": err.to_string(), "position": err.position(), "topic": text}}),
        format!("invalid topic `{text}`: {err}"),
    )
}

fn format_error(err: &FormatError) -> (Value, String) {
    (
        json!({"error": {"kind": err.kind(), "message": err.to_string()}}),
        format!("cannot format: {err}"),
    )
}

fn parse(text: &str) -> Result<Topic, (Value, String)> {
    Topic::parse(text).map_err(|e| topic_error(&e, text))
}

fn part_json(part: &Part) -> Value {
    let value = match part {
        Part::Exact(t) => json!(t),
        Part::Any(name) => json!(name),
        Part::Range(options) => json!(options),
        Part::Pattern(p) => json!(p.as_str()),
        Part::Rest => json!("**"),
    };
    json!({"type": part.kind().as_str(), "value": value})
}

fn parse_answer(text: &str) -> Result<Value, (Value, String)> {
    let topic = parse(text)?;
    Ok(json!({
        "topic": topic.as_str(),
        "is_exact": topic.is_exact(),
        "parts": topic.iter().map(part_json).collect::<Vec<_>>(),
    }))
}

fn match_answer(a: &str, b: &str) -> Result<Value, (Value, String)> {
    let (ta, tb) = (parse(a)?, parse(b)?);
    let result = match_topics(&ta, &tb);
    let captures: Map<String, Value> = result
        .captures_map()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), json!(v)))
        .collect();
    let nodes: Vec<Value> = result
        .nodes()
        .iter()
        .map(|n| {
            json!({
                "matched": n.matched,
                "a": n.a.map(ToString::to_string),
                "b": n.b.map(ToString::to_string),
                "literal": n.literal,
            })
        })
        .collect();
    Ok(json!({"matched": result.matched(), "captures": captures, "nodes": nodes}))
}

fn format_answer(
    text: &str,
    mapping: &HashMap<String, String>,
    strict: bool,
) -> Result<Value, (Value, String)> {
    let topic = parse(text)?;
    let formatted = topic
        .format_map(mapping, strict)
        .map_err(|e| format_error(&e))?;
    Ok(json!({"result": formatted.as_str()}))
}

fn human_parse(v: &Value) -> String {
    let mut s = format!(
        "topic     {}\nexact     {}\nparts\n",
        v["topic"].as_str().unwrap_or_default(),
        if v["is_exact"] == json!(true) {
            "yes"
        } else {
            "no"
        }
    );
    for (i, p) in v["parts"].as_array().into_iter().flatten().enumerate() {
        let value = match &p["value"] {
            Value::String(t) => t.clone(),
            Value::Array(options) => options
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" | "),
            other => other.to_string(),
        };
        s += &format!(
            "  {i:<3} {:<8} {value}\n",
            p["type"].as_str().unwrap_or_default()
        );
    }
    s
}

fn human_match(v: &Value) -> String {
    let mut s = if v["matched"] == json!(true) {
        "matched\n".to_owned()
    } else {
        "no match\n".to_owned()
    };
    if let Some(captures) = v["captures"].as_object() {
        for (k, val) in captures {
            s += &format!("  {k} = {}\n", val.as_str().unwrap_or_default());
        }
    }
    s
}

fn human_format(v: &Value) -> String {
    format!("{}\n", v["result"].as_str().unwrap_or_default())
}

/// One request line of `topic check`, answered as the matching command's
/// `--json` output.
fn check_line(line: &str) -> Value {
    let request: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return bad_request(format!("not a JSON object: {e}")),
    };
    let field = |name: &str| -> Result<&str, Value> {
        request
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| bad_request(format!("missing string field `{name}`")))
    };
    let answer = match request.get("op").and_then(Value::as_str) {
        Some("parse") => field("topic").map(parse_answer),
        Some("match") => field("a").and_then(|a| field("b").map(|b| match_answer(a, b))),
        Some("format") => field("topic").and_then(|topic| {
            let strict = match request.get("strict") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err(bad_request("`strict` must be true or false".into())),
            };
            let mut mapping = HashMap::new();
            match request.get("mapping") {
                None | Some(Value::Null) => {}
                Some(Value::Object(m)) => {
                    for (k, v) in m {
                        let v = v.as_str().ok_or_else(|| {
                            bad_request(format!("mapping value for `{k}` must be a string"))
                        })?;
                        mapping.insert(k.clone(), v.to_owned());
                    }
                }
                Some(_) => return Err(bad_request("`mapping` must be an object".into())),
            }
            Ok(format_answer(topic, &mapping, strict))
        }),
        Some(op) => Err(bad_request(format!(
            "unknown op `{op}`: use parse, match or format"
        ))),
        None => Err(bad_request("missing string field `op`".into())),
    };
    match answer {
        Ok(Ok(v)) => v,
        Ok(Err((v, _))) | Err(v) => v,
    }
}

fn bad_request(message: String) -> Value {
    json!({"error": {"kind": "bad_request", "message": message}})
}

fn check(input: impl BufRead, mut out: impl Write) -> Result<ExitCode> {
    for line in input.lines() {
        let line = line.context("reading stdin")?;
        let answer = check_line(&line);
        writeln!(out, "{answer}")?;
        // One answer per request, visible at once to a co-process.
        out.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}
