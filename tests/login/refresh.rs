//! A refresh that fails for a burst of requests, and one that races another routeplane
//! sharing the token file.

use std::sync::Arc;
use std::time::Instant;

use crate::support::proxy::Resp;

use super::*;

/// A proxy on `config`, its token file the one in `dir`.
fn serving(dir: &Dir, config: &str) -> Proxy {
    let file = dir.path().join("data/auth.json");
    Proxy::start_with(
        config,
        &[("ROUTEPLANE_AUTH_FILE", file.to_str().unwrap())],
        &[],
    )
}

/// As [`serving`], the pause after a refresh that failed for now `ms` long, not 5 s.
fn serving_pausing(dir: &Dir, config: &str, ms: u64) -> Proxy {
    let file = dir.path().join("data/auth.json");
    Proxy::start_with(
        config,
        &[
            ("ROUTEPLANE_AUTH_FILE", file.to_str().unwrap()),
            ("ROUTEPLANE_TEST_REFRESH_PAUSE_MS", &ms.to_string()),
        ],
        &[],
    )
}

/// What a client hears when `provider`'s refresh failed for now, `why`.
fn refresh_failed(provider: &str, why: &str) -> String {
    format!(
        "provider `{provider}` could not refresh its login ({why}); the login is kept and a \
         request after a short pause (at most a minute) tries again: if this lasts, check \
         this machine's network, or run `routeplane login {provider}`"
    )
}

/// An Anthropic login made against its mock token endpoint, its access token expiring
/// in 60 s (inside the refresh margin), and the config that serves it from an upstream
/// that answers.
fn logged_in_near_expiry() -> (MockOAuth, MockUpstream, Dir, String) {
    logged_in_expiring_in(60)
}

/// As [`logged_in_near_expiry`], the access token expiring in `secs` (0: expired).
fn logged_in_expiring_in(secs: u64) -> (MockOAuth, MockUpstream, Dir, String) {
    let oauth = MockOAuth::start(secs);
    let up = MockUpstream::always(Wire::Anthropic.reply(false, false));
    let dir = Dir::new();
    let config = anthropic_config(&oauth, &up);
    let (code, _, err) = anthropic_login(&dir, &config);
    assert_eq!(code, 0, "{err}");
    (oauth, up, dir, config)
}

/// `config` with its token endpoint moved from `oauth` to `url`.
fn token_url_at(config: &str, oauth: &MockOAuth, url: &str) -> String {
    config.replace(
        &format!("token_url: {}/token", oauth.base()),
        &format!("token_url: {url}/token"),
    )
}

/// Every wire asks for `anthropic:claude-x` at once, each from a thread of its own.
fn burst(p: &Arc<Proxy>) -> Vec<(Wire, Resp)> {
    let handles: Vec<_> = Wire::ALL
        .into_iter()
        .map(|wire| {
            let p = Arc::clone(p);
            std::thread::spawn(move || {
                let r = p.post(
                    &wire.url("anthropic:claude-x", false),
                    wire.request("anthropic:claude-x", false, false),
                );
                (wire, r)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn a_burst_waiting_on_a_hung_token_endpoint_shares_one_refresh_and_its_failure() {
    // The login's token has expired and its token endpoint accepts connections and
    // never answers: each client, in its own protocol, hears about it once the one
    // refresh gives up, not one refresh after another.
    let (oauth, up, dir, config) = logged_in_expiring_in(0);
    let hung = MockUpstream::always(Reply::Hang(Duration::from_secs(30)));
    let config = token_url_at(&config, &oauth, &hung.url()) + "timeouts:\n  first_byte_secs: 2\n";
    let p = Arc::new(serving(&dir, &config));
    let started = Instant::now();
    let told: Vec<_> = burst(&p)
        .into_iter()
        .map(|(wire, r)| (wire, r.status, wire.error_message(&r.json())))
        .collect();
    assert_eq!(hung.count(), 1, "one refresh for the burst");
    let token_url = format!("{}/token", hung.url());
    for (wire, status, msg) in told {
        // A 502, not a 401: the login is not bad, and a client such as Claude Code
        // takes a 401 for its own key refused.
        assert_eq!(status, 502, "{wire:?}: {msg}");
        assert_eq!(
            msg,
            refresh_failed(
                "anthropic",
                &format!("refresh failed: {token_url} did not answer in time")
            ),
            "{wire:?}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(up.count(), 0);
}

#[test]
fn a_token_not_yet_expired_carries_requests_when_its_refresh_fails_for_now() {
    // The access token expires in 60 s, inside the five minutes before expiry when it
    // is refreshed, and the token endpoint answers 503: the request that made the
    // refresh, and those that waited for it, go out with the token they have rather
    // than failing with minutes of it left. The failure is one warning in the log,
    // without the tokens.
    let (oauth, up, dir, config) = logged_in_near_expiry();
    let down = MockUpstream::start(|_| {
        std::thread::sleep(Duration::from_millis(300));
        Reply::json(503, json!({"message": "down for maintenance"}))
    });
    let p = Arc::new(serving(&dir, &token_url_at(&config, &oauth, &down.url())));
    for (wire, r) in burst(&p) {
        assert_eq!(r.status, 200, "{wire:?}: {}", r.body);
    }
    assert_eq!(down.count(), 1, "one refresh for the burst");
    let used: Vec<_> = up
        .posts()
        .iter()
        .map(|r| r.header("authorization").unwrap_or_default().to_string())
        .collect();
    assert_eq!(used, vec!["Bearer at-1"; Wire::ALL.len()]);
    let warning = "warning: the anthropic login could not be refreshed (refresh failed \
                   (503: down for maintenance)); its access token, which expires in ";
    p.wait_log(warning);
    let log = p.log();
    assert_eq!(
        log.iter()
            .filter(|l| l.contains("could not be refreshed"))
            .count(),
        1,
        "{log:?}"
    );
    assert!(
        !log.iter().any(|l| l.contains("at-1") || l.contains("rt-1")),
        "{log:?}"
    );
    assert_eq!(
        stored(&dir)["credentials"]["anthropic"]["refresh_token"],
        json!("rt-1"),
        "the login is kept"
    );
}

#[test]
fn a_hung_token_endpoint_holds_no_request_whose_token_has_not_expired() {
    // The access token expires in 60 s, inside the five minutes before expiry when it
    // is refreshed, and the token endpoint holds its answer for 6 s: the requests go
    // out at once with the token they have (the old code held the first for the whole
    // 6 s), and only one refresh is made. Once the endpoint answers, the renewed login
    // is stored and used.
    let (oauth, up, dir, config) = logged_in_near_expiry();
    oauth.set_expires_in(3600);
    oauth.set_delay(Duration::from_secs(6));
    let p = serving(&dir, &config);
    let ask = || {
        p.post(
            "/v1/messages",
            Wire::Anthropic.request("anthropic:claude-x", false, false),
        )
    };
    let started = Instant::now();
    for _ in 0..2 {
        let r = ask();
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let used = |n: usize| up.posts()[n].header("authorization").map(str::to_string);
    assert_eq!(used(0).as_deref(), Some("Bearer at-1"));
    assert_eq!(used(1).as_deref(), Some("Bearer at-1"));
    let renewed = wait_until(Duration::from_secs(15), || {
        stored(&dir)["credentials"]["anthropic"]["refresh_token"] == json!("rt-2")
    });
    assert!(renewed, "{}", stored(&dir));
    let spent = oauth
        .requests()
        .iter()
        .filter(|r| r.json()["grant_type"] == "refresh_token")
        .count();
    assert_eq!(spent, 1, "one refresh");
    let r = ask();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(used(2).as_deref(), Some("Bearer at-2"));
}

#[test]
fn a_stop_waits_for_a_refresh_in_flight_so_the_rotated_refresh_token_is_stored() {
    // The request goes out with its unexpired token while the refresh goes on; a stop
    // right after must not end the process before the refresh's answer, which rotates
    // the refresh token, is stored: the login would be lost.
    let (oauth, _up, dir, config) = logged_in_near_expiry();
    oauth.set_expires_in(3600);
    oauth.set_delay(Duration::from_secs(3));
    let mut p = serving(&dir, &config);
    let r = p.post(
        "/v1/messages",
        Wire::Anthropic.request("anthropic:claude-x", false, false),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    p.signal("TERM");
    assert_eq!(
        p.wait_exit(Duration::from_secs(20)),
        Some(0),
        "{:?}",
        p.log()
    );
    assert_eq!(
        stored(&dir)["credentials"]["anthropic"]["refresh_token"],
        json!("rt-2"),
        "{:?}",
        p.log()
    );
}

#[test]
fn two_servers_sharing_a_token_file_spend_its_refresh_token_once() {
    // Two routeplanes (two users' services, or a server and a script) on one token
    // file, both with a request as the token nears expiry: one refreshes, the other
    // waits and takes the renewed login from the file instead of spending the old
    // refresh token, which the provider has already rotated.
    // Expired, so that each request waits for the refresh's end however slow the
    // machine (one near expiry waits a moment, then goes out with its old token).
    let (oauth, up, dir, config) = logged_in_expiring_in(0);
    oauth.set_expires_in(3600);
    // Both refreshes, if both were made, would be in flight at once.
    oauth.set_delay(Duration::from_millis(500));
    let (a, b) = (
        Arc::new(serving(&dir, &config)),
        Arc::new(serving(&dir, &config)),
    );
    let asking: Vec<_> = [a, b]
        .into_iter()
        .map(|p| {
            std::thread::spawn(move || {
                let r = p.post(
                    "/v1/messages",
                    Wire::Anthropic.request("anthropic:claude-x", false, false),
                );
                (r.status, r.body)
            })
        })
        .collect();
    for h in asking {
        let (status, body) = h.join().unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let spent: Vec<_> = oauth
        .requests()
        .iter()
        .map(|r| r.json())
        .filter(|f| f["grant_type"] == "refresh_token")
        .map(|f| f["refresh_token"].clone())
        .collect();
    assert_eq!(spent, [json!("rt-1")], "the refresh token is spent once");
    assert_eq!(
        stored(&dir)["credentials"]["anthropic"]["refresh_token"],
        json!(oauth.valid_refresh())
    );
    let used: Vec<_> = up
        .posts()
        .iter()
        .map(|r| r.header("authorization").unwrap_or_default().to_string())
        .collect();
    assert_eq!(used, ["Bearer at-2", "Bearer at-2"]);
}

#[test]
fn a_web_page_from_the_token_endpoint_fails_one_refresh_not_the_login() {
    // A CDN's challenge (403, HTML) stands in front of the token endpoint for a while:
    // the refresh fails, and the log says so, but the login is not marked "login
    // needed" for good; the access token, which has not expired, is used as it is, and
    // no refresh is tried during the pause that follows; once the endpoint answers
    // again, so does the login.
    let (oauth, up, dir, config) = logged_in_near_expiry();
    let page = "<html><title>Just a moment...</title></html>".to_string();
    let renewed = json!({"access_token": "at-new", "refresh_token": "rt-new", "expires_in": 3600});
    let tokens = MockUpstream::script(vec![
        Reply::Typed(403, "text/html", page),
        Reply::json(200, renewed),
    ]);
    let config = token_url_at(&config, &oauth, &tokens.url());
    let p = serving_pausing(&dir, &config, 300);
    let ask = || {
        p.post(
            "/v1/messages",
            Wire::Anthropic.request("anthropic:claude-x", false, false),
        )
    };
    let r = ask();
    assert_eq!(r.status, 200, "{}", r.body);
    p.wait_log(
        "warning: the anthropic login could not be refreshed (refresh failed (403: an \
         answer that is not JSON))",
    );
    assert_eq!(
        stored(&dir)["credentials"]["anthropic"]["login_needed"],
        Value::Null
    );
    let r = ask();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(tokens.count(), 1, "no refresh within the pause");
    assert_eq!(up.posts()[0].header("authorization"), Some("Bearer at-1"));
    assert_eq!(up.posts()[1].header("authorization"), Some("Bearer at-1"));
    std::thread::sleep(Duration::from_millis(400));
    let r = ask();
    assert_eq!(r.status, 200, "{}", r.body);
    // That request started the next refresh and waited a moment for it (on a slow
    // machine it may have gone out with at-1 still): once stored, the login is used.
    let renewed = wait_until(Duration::from_secs(15), || {
        stored(&dir)["credentials"]["anthropic"]["refresh_token"] == json!("rt-new")
    });
    assert!(renewed, "{}", stored(&dir));
    let r = ask();
    assert_eq!(r.status, 200, "{}", r.body);
    let last = up.posts().last().cloned().unwrap();
    assert_eq!(last.header("authorization"), Some("Bearer at-new"));
}

#[test]
fn a_token_file_damaged_while_serving_is_not_refreshed_into() {
    // The server knows the login (its token expiring within the margin); then the file
    // is cut short (an editor, a full disk). The refresh token is not spent: the
    // rotated one could not be stored, and the login, once the file is mended, would
    // hold a dead refresh token.
    let (oauth, up, dir, config) = logged_in_near_expiry();
    let p = serving(&dir, &config);
    // Read at start (and for the model list), before the file is damaged.
    p.wait_log("local servers");
    let file = dir.path().join("data/auth.json");
    dir.write("data/auth.json", r#"{"version": 1, "credentials": {"anthr"#);
    let r = p.post(
        "/v1/messages",
        Wire::Anthropic.request("anthropic:claude-x", false, false),
    );
    assert_eq!(oauth.refreshes(), 0, "the refresh token is kept");
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(
        r.error_message(),
        format!(
            "provider `anthropic` needs a login (its token file cannot be read: `{}` is not valid JSON (EOF while parsing a string at line 1 column 37); fix or delete it and log in again); run `routeplane login anthropic`",
            file.display()
        )
    );
    assert_eq!(up.count(), 0);
}

#[test]
fn a_token_endpoint_answering_503_is_asked_once_and_the_next_request_hears_at_once() {
    // The access token has expired and the token endpoint answers 503 after a while:
    // the first request waits for it and gets a 502; the next, within the pause that
    // follows, gets the same 502 at once instead of waiting on the endpoint again.
    let oauth = MockOAuth::start(0);
    let up = MockUpstream::always(Wire::Anthropic.reply(false, false));
    let dir = Dir::new();
    let config = anthropic_config(&oauth, &up);
    let (code, _, err) = anthropic_login(&dir, &config);
    assert_eq!(code, 0, "{err}");
    let down = MockUpstream::start(|_| {
        std::thread::sleep(Duration::from_millis(800));
        Reply::json(503, json!({"message": "down for maintenance"}))
    });
    let p = serving(&dir, &token_url_at(&config, &oauth, &down.url()));
    let ask = || {
        let started = Instant::now();
        let r = p.post(
            "/v1/messages",
            Wire::Anthropic.request("anthropic:claude-x", false, false),
        );
        (r, started.elapsed())
    };
    let told = refresh_failed("anthropic", "refresh failed (503: down for maintenance)");
    let (first, waited) = ask();
    assert_eq!(first.status, 502, "{}", first.body);
    assert_eq!(first.error_message(), told);
    assert!(waited >= Duration::from_millis(800), "{waited:?}");
    let (second, waited) = ask();
    assert_eq!(second.status, 502, "{}", second.body);
    assert_eq!(second.error_message(), told);
    assert!(waited < Duration::from_millis(400), "{waited:?}");
    assert_eq!(down.count(), 1, "one refresh");
    assert_eq!(up.count(), 0);
}

#[test]
fn a_refresh_with_no_thread_to_be_had_runs_on_the_requests_own() {
    // At the process's thread limit a refresh's thread cannot be started: the request
    // panicked and its client got a 500. The hook makes the start fail (the limit does
    // not bind root); the refresh then runs on the request's own thread.
    let (oauth, up, dir, config) = logged_in_expiring_in(0);
    oauth.set_expires_in(3600);
    let file = dir.path().join("data/auth.json");
    let start = |config: &str| {
        Proxy::start_with(
            config,
            &[
                ("ROUTEPLANE_AUTH_FILE", file.to_str().unwrap()),
                ("ROUTEPLANE_TEST_SPAWN_FAILS", "refresh"),
            ],
            &[],
        )
    };
    let p = start(&config);
    let ask = |p: &Proxy| {
        p.post(
            "/v1/messages",
            Wire::Anthropic.request("anthropic:claude-x", false, false),
        )
    };
    let r = ask(&p);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(oauth.refreshes(), 1);
    assert_eq!(
        up.posts()[0].header("authorization"),
        Some("Bearer at-2"),
        "the renewed token"
    );
    assert_eq!(
        stored(&dir)["credentials"]["anthropic"]["refresh_token"],
        json!("rt-2"),
        "the rotation is kept"
    );
    drop(p);
    // A refresh that fails answers too, once: the login refused for good asks the
    // client to log in, rather than the request trying again and again.
    let mut v = stored(&dir);
    v["credentials"]["anthropic"]["refresh_token"] = json!("rt-stale");
    v["credentials"]["anthropic"]["expires_at"] = json!(1);
    dir.write("data/auth.json", &v.to_string());
    let p = start(&config);
    let r = ask(&p);
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(
        r.error_message()
            .starts_with("provider `anthropic` needs a login ("),
        "{}",
        r.body
    );
    let asked = oauth
        .requests()
        .iter()
        .filter(|r| r.json()["grant_type"] == "refresh_token")
        .count();
    assert_eq!(asked, 2, "one refresh each");
}
