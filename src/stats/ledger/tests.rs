//! The ledger's tests: a line written and read back, the files summed, rotation.

use std::time::Duration;

use super::*;
use crate::log::StreamEnd;
use crate::protocol::Protocol;
use crate::stats::{Ended, Finished, Stats, Tokens, Tried};

/// The ledger line of a finished request, newline included.
fn line(f: &Finished) -> String {
    let mut s = String::with_capacity(320 + 96 * f.tried.len());
    push_line(&mut s, f);
    s
}

fn sample() -> Finished {
    Finished {
        at: std::time::UNIX_EPOCH + Duration::from_millis(1_796_182_812_123),
        inbound: Protocol::Anthropic,
        requested: "sm\"art".into(),
        served_by: Some("local:llama3.1:8b".into()),
        status: 200,
        stream: true,
        stream_end: Some(StreamEnd::Complete),
        attempts: 2,
        rescues: 0,
        rescued_by: Vec::new(),
        tried: vec![
            Tried::failed("cloud:gpt", Some(503), "server error"),
            Tried {
                endpoint: "local:llama3.1:8b".into(),
                word: "200".into(),
                continuation: false,
                ended: Ended::Answered,
            },
        ],
        ttfb: Some(Duration::from_micros(12_340)),
        ttft: Some(Duration::from_micros(15_050)),
        total: Duration::from_millis(200),
        tokens: Tokens {
            input: Some(12),
            output: Some(3),
            cached_input: Some(2),
            reasoning: None,
        },
    }
}

#[test]
fn a_line_is_one_json_object_with_every_field() {
    let l = line(&sample());
    assert!(l.ends_with("}\n") && l.matches('\n').count() == 1);
    assert_eq!(
        l.trim_end(),
        r#"{"time":"2026-12-02T03:40:12.123Z","inbound":"anthropic","model":"sm\"art","served_by":"local:llama3.1:8b","status":200,"stream":true,"stream_end":"complete","attempts":2,"rescues":0,"failed":[{"endpoint":"cloud:gpt","status":503,"reason":"server error"}],"abandoned":null,"ttfb_ms":12.3,"ttft_ms":15.1,"total_ms":200.0,"tokens":{"input":12,"output":3,"cached_input":2,"reasoning":null}}"#
    );
    let back: Entry = serde_json::from_str(&l).unwrap();
    assert_eq!(back.tokens.input, Some(12));
    assert_eq!(back.failed.len(), 1);
}

#[test]
fn broken_streams_are_errors_and_old_lines_are_still_read() {
    let dir = std::env::temp_dir().join(format!("routeplane-ends-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("usage.jsonl");
    let broken = Finished {
        stream_end: Some(StreamEnd::Broken),
        ..sample()
    };
    let mut left = Finished {
        served_by: None,
        status: 499,
        stream_end: None,
        ..sample()
    };
    left.tried[1].ended = Ended::ClientGone;
    // A line from before `stream_end` and `abandoned` were written.
    let old = r#"{"time":"2026-12-02T03:40:12.123Z","inbound":"chat_completions","model":"m","served_by":"local:llama3.1:8b","status":200,"stream":true,"attempts":1,"rescues":0,"failed":[],"ttfb_ms":1.0,"ttft_ms":1.0,"total_ms":2.0,"tokens":{"input":1,"output":1,"cached_input":null,"reasoning":null}}"#;
    let text = [line(&broken), line(&left), format!("{old}\n")].concat();
    std::fs::write(&path, &text).unwrap();
    let s = summarize(&path, None, By::Model).unwrap();
    assert_eq!(s.skipped, 0);
    let rows: Vec<_> = (s.groups.iter())
        .map(|g| (g.key.as_str(), g.requests, g.errors, g.failovers, g.failed))
        .collect();
    // The client left while local was asked, after cloud failed: local's request,
    // moved on to from cloud, and no one's error. Cloud failed twice, its own row.
    assert_eq!(
        rows,
        [("cloud:gpt", 0, 0, 0, 2), ("local:llama3.1:8b", 3, 1, 2, 0)]
    );
    let back = tail(&path, text.len() as u64, text.len() as u64);
    assert_eq!(back[0].stream_end, Some(StreamEnd::Broken));
    assert!(back[0].is_error());
    assert_eq!(back[1].abandoned(), Some("local:llama3.1:8b"));
    assert_eq!((back[2].stream, back[2].stream_end), (true, None));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_rescued_line_names_its_rescuers_and_usage_counts_each_where_it_continued() {
    let dir = std::env::temp_dir().join(format!("routeplane-rescued-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("usage.jsonl");
    let rescued = Finished {
        stream_end: Some(StreamEnd::Rescued),
        rescues: 2,
        rescued_by: vec!["local:llama3.1:8b".into(), "far:m".into()],
        ..sample()
    };
    let l = line(&rescued);
    assert!(
        l.contains(r#""rescues":2,"rescued_by":["local:llama3.1:8b","far:m"],"failed""#),
        "{l}"
    );
    assert!(
        !line(&sample()).contains("rescued_by"),
        "only a rescued line has it"
    );
    // A rescued stream's line from before `rescued_by` was written: its rescue stays
    // where the request counts, and no one is named as having continued it.
    let old = r#"{"time":"2026-12-02T03:40:12.123Z","inbound":"chat_completions","model":"m","served_by":"local:llama3.1:8b","status":200,"stream":true,"stream_end":"rescued","attempts":2,"rescues":1,"failed":[],"abandoned":null,"ttfb_ms":1.0,"ttft_ms":1.0,"total_ms":2.0,"tokens":{"input":1,"output":1,"cached_input":null,"reasoning":null}}"#;
    let text = [l, format!("{old}\n")].concat();
    std::fs::write(&path, &text).unwrap();
    let s = summarize(&path, None, By::Provider).unwrap();
    assert_eq!(s.skipped, 0);
    let rows: Vec<_> = (s.groups.iter())
        .map(|g| (g.key.as_str(), g.requests, g.rescues, g.continued))
        .collect();
    assert_eq!(
        rows,
        [("cloud", 0, 0, 0), ("far", 0, 0, 1), ("local", 2, 3, 1)]
    );
    assert_eq!((s.total.rescues, s.total.continued), (3, 2));
    let back = tail(&path, text.len() as u64, text.len() as u64);
    assert_eq!(back[0].rescued_by, rescued.rescued_by);
    assert!(back[1].rescued_by.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_tail_skips_a_cut_line_and_seeds_today() {
    let dir = std::env::temp_dir().join(format!("routeplane-tail-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("usage.jsonl");
    let old = Finished {
        at: std::time::UNIX_EPOCH + Duration::from_secs(1_600_000_000),
        ..sample()
    };
    let now = Finished {
        at: SystemTime::now(),
        ..sample()
    };
    let text = [line(&old), line(&old), line(&now), line(&now)].concat();
    std::fs::write(&path, &text).unwrap();
    let len = text.len() as u64;
    // A window that starts inside the second line: three lines, the first cut.
    let window = len - line(&old).len() as u64 - 5;
    let got = tail(&path, len, window);
    assert_eq!(got.len(), 2, "the cut line is skipped");
    assert_eq!(got[0].tokens, now.tokens);
    // Read back, the failed attempts are what is left of the trail.
    assert_eq!(got[0].tried, now.tried[..1]);
    assert_eq!(tail(&path, len, len).len(), 4);

    let stats = Stats::default();
    stats.seed(tail(&path, len, len));
    let v: serde_json::Value =
        serde_json::from_str(&stats.status_json(&[crate::stats::tests::up_source("local")]))
            .unwrap();
    assert_eq!(
        v["sources"][0]["today"]["requests"], 2,
        "only today's lines: {v}"
    );
    assert_eq!(v["recent"].as_array().unwrap().len(), 4);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_dropped_ledger_writes_what_it_was_given() {
    let dir = std::env::temp_dir().join(format!("routeplane-drop-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("usage.jsonl");
    let ledger = Ledger::open(path.clone(), u64::MAX, Arc::default());
    ledger.append(&line(&sample()));
    // No flush: dropping it writes its lines and takes its sink out of the batch.
    drop(ledger);
    let written = std::fs::read_to_string(&path).unwrap();
    assert_eq!(written, line(&sample()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rotation_keeps_one_previous_file() {
    let dir = std::env::temp_dir().join(format!("routeplane-ledger-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("usage.jsonl");
    let one = line(&sample()).len() as u64;
    let ledger = Ledger::open(path.clone(), one * 3, Arc::default());
    // Gathered into one batch, the lines still turn the file over where one write
    // per line would.
    for _ in 0..10 {
        ledger.append(&line(&sample()));
    }
    ledger.flush();
    let current = std::fs::read_to_string(&path).unwrap();
    let previous = std::fs::read_to_string(dir.join("usage.jsonl.1")).unwrap();
    assert_eq!(previous.lines().count(), 4, "rotated once past 3 lines");
    assert_eq!(current.lines().count(), 2);
    let s = summarize(&path, None, By::Provider).unwrap();
    assert_eq!(s.total.requests, 6);
    assert_eq!((s.groups[0].key.as_str(), s.groups[0].failed), ("cloud", 6));
    assert_eq!(s.groups[1].key, "local");
    assert_eq!((s.total.failovers, s.total.input), (6, 72));
    let _ = std::fs::remove_dir_all(&dir);
}
