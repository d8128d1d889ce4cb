//! Drives the real `shm-bus` binary's `topic` commands: output shapes and
//! exit codes as the CLI contract says.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

fn shm_bus(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shm-bus"))
        .args(args)
        .output()
        .expect("run shm-bus")
}

fn json_of(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn stderr_lines(out: &Output) -> usize {
    String::from_utf8_lossy(&out.stderr).lines().count()
}

#[test]
fn parse_json_lists_typed_parts() {
    let out = shm_bus(&[
        "topic",
        "parse",
        "--json",
        "md.+venue.(bid||ask)./^[A-Z]+$/.**",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        json_of(&out),
        json!({
            "topic": "md.{venue}.(bid|ask)./^[A-Z]+$/.**",
            "is_exact": false,
            "parts": [
                {"type": "exact", "value": "md"},
                {"type": "any", "value": "venue"},
                {"type": "range", "value": ["bid", "ask"]},
                {"type": "pattern", "value": "^[A-Z]+$"},
                {"type": "rest", "value": "**"},
            ]
        })
    );
}

#[test]
fn parse_invalid_topic_exits_2_with_error_json_and_one_stderr_line() {
    let out = shm_bus(&["topic", "parse", "--json", "a..b"]);
    assert_eq!(out.status.code(), Some(2));
    let v = json_of(&out);
    assert_eq!(v["error"]["kind"], "empty_part");
    assert_eq!(v["error"]["position"], 2);
    assert!(v["error"]["message"].as_str().unwrap().contains("byte 2"));
    assert_eq!(stderr_lines(&out), 1);

    let out = shm_bus(&["topic", "parse", "x./[/"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stdout.is_empty(),
        "human mode prints errors on stderr only"
    );
    assert_eq!(stderr_lines(&out), 1);
}

#[test]
fn parse_human_output() {
    let out = shm_bus(&["topic", "parse", "a.{b}"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("a.{b}") && text.contains("any") && text.contains("exact"),
        "{text}"
    );
}

#[test]
fn match_json_is_symmetric_with_captures() {
    for (a, b) in [
        ("md.{venue}.AAPL", "md.XNAS.AAPL"),
        ("md.XNAS.AAPL", "md.{venue}.AAPL"),
    ] {
        let out = shm_bus(&["topic", "match", "--json", a, b]);
        assert_eq!(out.status.code(), Some(0));
        let v = json_of(&out);
        assert_eq!(v["matched"], true);
        assert_eq!(v["captures"], json!({"venue": "XNAS"}));
    }
    let v = json_of(&shm_bus(&["topic", "match", "--json", "a.(b|c)", "a.d"]));
    assert_eq!(v["matched"], false);
    assert_eq!(v["captures"], json!({}));
    let out = shm_bus(&["topic", "match", "--json", "a", "/x"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(json_of(&out)["error"]["kind"], "unclosed_pattern");
}

#[test]
fn format_json_and_errors() {
    let v = json_of(&shm_bus(&[
        "topic",
        "format",
        "--json",
        "md.{v}.{s}",
        "v=XNAS",
        "s=AAPL",
    ]));
    assert_eq!(v, json!({"result": "md.XNAS.AAPL"}));
    let v = json_of(&shm_bus(&[
        "topic",
        "format",
        "--json",
        "md.{v}.{s}",
        "v=XNAS",
    ]));
    assert_eq!(v, json!({"result": "md.XNAS.{s}"}));

    let out = shm_bus(&[
        "topic",
        "format",
        "--json",
        "--strict",
        "md.{v}.{s}",
        "v=XNAS",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let v = json_of(&out);
    assert_eq!(v["error"]["kind"], "missing_value");
    assert!(v["error"]["message"].is_string());

    let out = shm_bus(&["topic", "format", "--json", "md.{v}", "v=a.b"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(json_of(&out)["error"]["kind"], "invalid_value");

    let out = shm_bus(&["topic", "format", "md.{v}", "no-equals-sign"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr_lines(&out), 1);
}

#[test]
fn bad_usage_exits_2() {
    assert_eq!(shm_bus(&["topic", "nonsense"]).status.code(), Some(2));
    assert_eq!(shm_bus(&["topic", "parse"]).status.code(), Some(2));
    assert_eq!(
        shm_bus(&["topic", "parse", "a", "--bogus"]).status.code(),
        Some(2)
    );
}

#[test]
fn check_answers_every_line_and_goes_on_after_bad_ones() {
    let input = [
        r#"{"op":"parse","topic":"a.{b}"}"#,
        r#"not json"#,
        r#"{"op":"match","a":"a.{x}","b":"a.b"}"#,
        r#"{"op":"format","topic":"a.{x}","mapping":{"x":"1"},"strict":true}"#,
        r#"{"op":"format","topic":"a.{x}.{y}","mapping":{"x":"1"},"strict":false}"#,
        r#"{"op":"format","topic":"a.{x}","mapping":{"x":1}}"#,
        r#"{"op":"explode"}"#,
        r#"{"op":"parse"}"#,
        r#"{"op":"parse","topic":"a..b"}"#,
        r#"{"op":"match","a":"x","b":"(|)"}"#,
        r#"{"op":"format","topic":"a.{x}","mapping":{},"strict":true}"#,
        "",
        r#"{"op":"parse","topic":"last"}"#,
    ];
    let mut child = Command::new(env!("CARGO_BIN_EXE_shm-bus"))
        .args(["topic", "check"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .unwrap()
        .write_all((input.join("\n") + "\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each output line is JSON"))
        .collect();
    assert_eq!(lines.len(), input.len(), "one answer per input line");
    assert_eq!(lines[0]["topic"], "a.{b}");
    assert_eq!(lines[1]["error"]["kind"], "bad_request");
    assert_eq!(
        lines[2],
        json!({"matched": true, "captures": {"x": "b"}, "nodes": lines[2]["nodes"].clone()})
    );
    assert_eq!(lines[3], json!({"result": "a.1"}));
    assert_eq!(lines[4], json!({"result": "a.1.{y}"}));
    assert_eq!(lines[5]["error"]["kind"], "bad_request");
    assert_eq!(lines[6]["error"]["kind"], "bad_request");
    assert_eq!(lines[7]["error"]["kind"], "bad_request");
    assert_eq!(lines[8]["error"]["kind"], "empty_part");
    assert_eq!(lines[8]["error"]["position"], 2);
    assert_eq!(lines[9]["error"]["kind"], "empty_range");
    assert_eq!(lines[10]["error"]["kind"], "missing_value");
    assert_eq!(lines[11]["error"]["kind"], "bad_request");
    assert_eq!(lines[12]["topic"], "last");
}
