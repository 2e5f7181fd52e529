//! What the client gets when every endpoint failed: one status chosen from what each
//! said, and when a retry can work, the shortest pause the busy ones asked for.

use super::*;

/// An answer with `status`, a `Retry-After` of `pause` seconds when given, and an
/// OpenAI-shaped error saying `words`.
fn said(status: u16, pause: Option<u32>, words: &str) -> Reply {
    let headers = pause.map(|s| ("Retry-After".to_string(), s.to_string()));
    Reply::JsonWith(
        status,
        headers.into_iter().collect(),
        json!({"error": {"message": words}}).to_string(),
    )
}

/// What `a`, `b` and `c` answer: a status (0: the connection is refused) and the
/// `Retry-After` it names.
type Answers = [(u16, Option<u32>); 3];

#[test]
fn a_rate_limit_or_an_overload_among_other_failures_decides_the_status_and_its_pause() {
    // Before, any failure of another kind beside a rate limit or an overload (a 500,
    // a refused connection) made the whole a 502 without `Retry-After`: the client
    // was told nothing a retry could use, though a later retry can work.
    let (limited, full, broken, other) = (429, 503, 500, 0);
    let cases: [(Answers, u16, u16, Option<&str>); 7] = [
        // A rate limit beside server errors: the rate limit, and its pause.
        (
            [(limited, Some(7)), (broken, None), (broken, None)],
            429,
            429,
            Some("7"),
        ),
        // The shortest pause among the rate limits; a 500's pause is no promise.
        (
            [(broken, Some(1)), (limited, Some(9)), (limited, Some(4))],
            429,
            429,
            Some("4"),
        ),
        // Beside a refused connection (`other`): still the rate limit.
        (
            [(other, None), (limited, Some(6)), (broken, None)],
            429,
            429,
            Some("6"),
        ),
        // Out of capacity wins over a rate limit (the sources are full, the client
        // is not sending too much); the shortest pause of either.
        (
            [(full, Some(5)), (broken, None), (limited, Some(3))],
            503,
            529,
            Some("3"),
        ),
        // An overload that named no pause: none made up.
        (
            [(broken, None), (full, None), (other, None)],
            503,
            529,
            None,
        ),
        // Each rate limited or overloaded: as before.
        (
            [(limited, Some(8)), (limited, Some(2)), (limited, Some(5))],
            429,
            429,
            Some("2"),
        ),
        // Nothing a retry later would change: a 502.
        (
            [(broken, None), (broken, Some(4)), (other, None)],
            502,
            502,
            None,
        ),
    ];
    for (answers, chat_status, anthropic_status, pause) in cases {
        let mocks: Vec<MockUpstream> = answers
            .iter()
            .map(|&(status, pause)| MockUpstream::always(said(status, pause, "nope")))
            .collect();
        let url = |i: usize| match answers[i].0 {
            0 => dead_url(),
            _ => mocks[i].url(),
        };
        let p = Proxy::start(&format!(
            "providers:\n  a: {{api_base: {}, models: [m]}}\n  b: {{api_base: {}, models: [m]}}\n  c: {{api_base: {}, models: [m]}}\nmodels:\n  smart: {{endpoints: [a:m, b:m, c:m]}}\nfailover:\n  retries: 0\n",
            url(0),
            url(1),
            url(2)
        ));
        for (client, status) in [
            (Wire::Chat, chat_status),
            (Wire::Anthropic, anthropic_status),
        ] {
            let what = format!("{answers:?} to {client:?}");
            let resp = ask_as(&p, client, "smart", false);
            assert_eq!(resp.status, status, "{what}: {}", resp.body);
            assert_eq!(resp.header("retry-after"), pause, "{what}");
            // Every attempt is still listed, whatever decided the status.
            let message = client.error_message(&resp.json());
            for endpoint in ["a:m → ", "b:m → ", "c:m → "] {
                assert!(message.contains(endpoint), "{what}: {message}");
            }
        }
    }
}
