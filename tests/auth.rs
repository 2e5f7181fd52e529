//! Client keys and what crosses to the upstream: nobody gets in without a key, and the
//! client's own credentials never leave the proxy.

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::support::proxy::{bin, hermetic, routeplane_in};
use crate::support::upstream::chat_answer;
use crate::support::{
    Dir, MockUpstream, Proxy, Reply, assert_text, config_error, validate, wait_until,
};

fn config(up: &MockUpstream) -> String {
    format!(
        "skip_auth: false\nkeys:\n  - ${{CLIENT_KEY}}\nproviders:\n  local:\n    api_base: {}\n    api_key: provider-secret\n    models: [m]\n",
        up.url()
    )
}

const BODY: &[u8] = br#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#;

#[test]
fn missing_or_wrong_key_is_401_in_the_callers_protocol() {
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start_with(&config(&up), &[("CLIENT_KEY", "client-key-1")], &[]);
    let resp = p.send("POST", "/v1/chat/completions", &[], BODY);
    assert_eq!(resp.status, 401);
    assert_text(
        resp.json()["error"]["message"].as_str().unwrap(),
        "missing or invalid API key: send `Authorization: Bearer KEY`, `x-api-key: KEY` or `x-goog-api-key: KEY` (or `?key=KEY`) with a key listed under `keys:` in ~/routeplane.yaml",
    );
    let resp = p.send("POST", "/v1/messages", &[("x-api-key", "wrong")], BODY);
    assert_eq!(resp.status, 401);
    assert_eq!(resp.json()["type"], "error");
    assert_eq!(resp.json()["error"]["type"], "authentication_error");
    let resp = p.send(
        "GET",
        "/v1/models",
        &[("Authorization", "Bearer client-key-2")],
        b"",
    );
    assert_eq!(resp.status, 401);
    assert_eq!(up.count(), 0);
}

#[test]
fn a_401_names_the_config_file_read_with_the_home_directory_as_tilde() {
    // It said "listed under `keys:` in routeplane.yaml" whatever `-c` named, or where
    // the file was found; the home directory, most often the user's name, stays out of
    // an answer a web page may read.
    let keyed = "skip_auth: false\nkeys:\n  - client-key-1\n";
    let unauthorized = |p: &Proxy| {
        let resp = p.send("POST", "/v1/chat/completions", &[], BODY);
        assert_eq!(resp.status, 401, "{}", resp.body);
        let said = resp.error_message();
        assert!(!said.contains(&*p.dir.path().to_string_lossy()), "{said}");
        said
    };
    let dir = Dir::new();
    dir.write("other.yaml", &hermetic(keyed));
    let mut cmd = routeplane_in(dir.path());
    cmd.args(["-c", "other.yaml", "--listen", "127.0.0.1:0"]);
    let said = unauthorized(&Proxy::spawn(cmd, dir));
    assert!(
        said.ends_with(" listed under `keys:` in other.yaml"),
        "{said}"
    );
    // Found in the user's config directory (`$XDG_CONFIG_HOME` is `~/config` here).
    let dir = Dir::new();
    let user = dir.path().join("config/routeplane");
    std::fs::create_dir_all(&user).unwrap();
    std::fs::write(user.join("routeplane.yaml"), hermetic(keyed)).unwrap();
    let mut cmd = routeplane_in(dir.path());
    cmd.args(["--listen", "127.0.0.1:0"]);
    let said = unauthorized(&Proxy::spawn(cmd, dir));
    let named = " listed under `keys:` in ~/config/routeplane/routeplane.yaml";
    assert!(said.ends_with(named), "{said}");
    // Named by its full path outside the home directory: by its name alone, the folders
    // being the operator's business, not a client's.
    let elsewhere = Dir::new();
    elsewhere.write("team.yaml", &hermetic(keyed));
    let full = elsewhere.path().join("team.yaml");
    let dir = Dir::new();
    let mut cmd = routeplane_in(dir.path());
    cmd.arg("-c").arg(&full).args(["--listen", "127.0.0.1:0"]);
    let said = unauthorized(&Proxy::spawn(cmd, dir));
    assert!(
        said.ends_with(" listed under `keys:` in team.yaml"),
        "{said}"
    );
    assert!(
        !said.contains(&*elsewhere.path().to_string_lossy()),
        "{said}"
    );
}

#[test]
fn a_key_without_bearer_is_told_how_to_send_it_in_the_callers_protocol() {
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start_with(&config(&up), &[("CLIENT_KEY", "client-key-1")], &[]);
    let said = "the `Authorization` header has no `Bearer ` before the key: send \
                `Authorization: Bearer KEY` or `x-api-key: KEY`";
    let auth = [("Authorization", "client-key-1")];
    let resp = p.send("POST", "/v1/chat/completions", &auth, BODY);
    assert_eq!(resp.status, 401, "{}", resp.body);
    assert_text(resp.json()["error"]["message"].as_str().unwrap(), said);
    let resp = p.send("POST", "/v1/messages", &auth, BODY);
    assert_eq!(resp.status, 401, "{}", resp.body);
    assert_eq!(resp.json()["error"]["type"], "authentication_error");
    assert_text(resp.json()["error"]["message"].as_str().unwrap(), said);
    assert!(!resp.body.contains("client-key-1"), "{}", resp.body);
    assert_eq!(up.count(), 0);
}

#[test]
fn a_key_header_sent_with_bearer_is_told_to_carry_the_key_alone() {
    // `x-api-key: Bearer KEY` got the 401 of a missing key, as if none had been sent.
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start_with(&config(&up), &[("CLIENT_KEY", "client-key-1")], &[]);
    for header in ["x-api-key", "api-key", "x-goog-api-key"] {
        let resp = p.send(
            "POST",
            "/v1/messages",
            &[(header, "Bearer client-key-1")],
            BODY,
        );
        assert_eq!(resp.status, 401, "{header}: {}", resp.body);
        assert_eq!(resp.json()["error"]["type"], "authentication_error");
        assert_text(
            resp.json()["error"]["message"].as_str().unwrap(),
            &format!(
                "the `{header}` header takes the key alone: send `{header}: KEY` without \
                 `Bearer `, or `Authorization: Bearer KEY`"
            ),
        );
        assert!(!resp.body.contains("client-key-1"), "{}", resp.body);
    }
    assert_eq!(up.count(), 0);
}

#[test]
fn either_header_carries_the_key_and_health_is_open() {
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start_with(&config(&up), &[("CLIENT_KEY", "client-key-1")], &[]);
    for header in [
        ("Authorization", "Bearer client-key-1"),
        ("x-api-key", "client-key-1"),
        // Azure OpenAI's SDKs send no other.
        ("api-key", "client-key-1"),
    ] {
        let resp = p.send("POST", "/v1/chat/completions", &[header], BODY);
        assert_eq!(resp.status, 200, "{header:?}: {}", resp.body);
    }
    assert_eq!(p.get("/health").status, 200);
}

#[test]
fn client_credentials_and_hop_by_hop_headers_never_reach_the_upstream() {
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start_with(&config(&up), &[("CLIENT_KEY", "client-key-1")], &[]);
    let headers = [
        ("Authorization", "Bearer client-key-1"),
        ("x-api-key", "client-key-1"),
        ("api-key", "client-key-1"),
        ("Proxy-Authorization", "Basic abc"),
        ("TE", "trailers"),
        ("Upgrade", "h2c"),
        ("X-Custom", "nope"),
    ];
    let resp = p.send("POST", "/v1/chat/completions", &headers, BODY);
    assert_eq!(resp.status, 200);
    let sent = &up.requests()[0];
    assert_eq!(
        sent.header("authorization"),
        Some("Bearer provider-secret"),
        "only the provider's key"
    );
    for h in [
        "x-api-key",
        "api-key",
        "proxy-authorization",
        "te",
        "upgrade",
        "x-custom",
    ] {
        assert!(
            sent.header(h).is_none(),
            "{h} was forwarded: {:?}",
            sent.headers
        );
    }
    assert!(!format!("{:?}", sent.headers).contains("client-key-1"));
}

#[test]
fn upstream_redirects_are_not_followed() {
    let elsewhere = MockUpstream::always(Reply::json(200, chat_answer("stolen")));
    let location = format!("{}/chat/completions", elsewhere.url());
    let up = MockUpstream::always(Reply::JsonWith(
        302,
        vec![("Location".into(), location)],
        "{}".into(),
    ));
    let p = Proxy::start(&format!(
        "providers:\n  local:\n    api_base: {}\n    api_key: provider-secret\n    models: [m]\n",
        up.url()
    ));
    let resp = p.post(
        "/v1/chat/completions",
        json!({"model": "m", "messages": []}),
    );
    // Not followed, and not passed on as a 302 the client cannot follow either: a 502
    // that says so (tests/failover/non_answers.rs has the words).
    assert_eq!(resp.status, 502, "{}", resp.body);
    assert!(
        resp.error_message().contains("answered 302, a redirect"),
        "{}",
        resp.body
    );
    assert_eq!(
        elsewhere.count(),
        0,
        "the credential never travels to the redirect target"
    );
}

#[test]
fn a_panic_stays_inside_its_request() {
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let yaml = format!(
        "workers: 1\nproviders:\n  local:\n    api_base: {}\n    models: [m, boom]\n",
        up.url()
    );
    let p = Proxy::start_with(&yaml, &[("ROUTEPLANE_TEST_PANIC_MODEL", "boom")], &[]);
    for _ in 0..3 {
        let resp = p.post(
            "/v1/chat/completions",
            json!({"model": "boom", "messages": []}),
        );
        assert_eq!(resp.status, 500);
        assert_eq!(
            resp.json()["error"]["message"],
            "internal error: the request handler failed; see the log"
        );
        // The only worker survived: the next request is served.
        let resp = p.post(
            "/v1/chat/completions",
            json!({"model": "m", "messages": []}),
        );
        assert_eq!(resp.status, 200);
    }
}

#[test]
fn keys_that_all_expand_to_nothing_are_warned_about_at_start_and_in_validate() {
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let yaml = format!(
        "keys:\n  - ${{ROUTEPLANE_TEST_UNSET_KEY:-}}\nproviders:\n  local:\n    api_base: {}\n    models: [m]\n",
        up.url()
    );
    let warning = "1:1: every entry of `keys:` is empty once its ${VAR}s are expanded, so client \
         auth is off (any client gets in); set the variable, or `skip_auth: false` to refuse to \
         start without a key";
    let p = Proxy::start(&yaml);
    let path = p.dir.path().join("routeplane.yaml");
    let line = p.wait_log(" warning: ");
    assert_text(
        line.split_once(' ').unwrap().1,
        &format!("warning: {}:{warning}", path.display()),
    );
    assert_eq!(p.log()[1], line, "right after the listening line");
    // What it warns of: in without a key.
    let resp = p.send("POST", "/v1/chat/completions", &[], BODY);
    assert_eq!(resp.status, 200);
    // Each reload says it again.
    p.signal("HUP");
    p.wait_log("reloaded config");
    let warned = || p.log().iter().filter(|l| l.contains(" warning: ")).count();
    assert!(
        wait_until(Duration::from_secs(5), || warned() == 2),
        "{:#?}",
        p.log()
    );
    let out = Command::new(bin())
        .args(["config", "validate", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_text(
        &String::from_utf8_lossy(&out.stderr),
        &format!("routeplane: warning: {}:{warning}\n", path.display()),
    );
    // Asked to require a key, it refuses to start instead.
    let strict = format!("skip_auth: false\n{yaml}");
    let (path, _, serve) = config_error(&strict, &[]);
    assert_text(
        &serve,
        &format!(
            "routeplane: error: {path}:2:1: every entry of `keys:` is empty once its ${{VAR}}s \
             are expanded; set the variable\n"
        ),
    );
}

#[test]
fn a_web_pages_request_is_refused_when_clients_need_no_key() {
    // With no key needed, any web site the user visits could make the browser POST to
    // Routeplane (a `text/plain` body needs no preflight) and spend the keys and logins
    // behind it. Browsers say where such a request comes from in `Origin`; programs
    // (SDKs, agents, curl) send none.
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start(&format!(
        "providers:\n  local:\n    api_base: {}\n    models: [m]\n",
        up.url()
    ));
    let page = |origin: &'static str, path: &str| {
        let headers = [("Origin", origin), ("Content-Type", "text/plain")];
        p.send("POST", path, &headers, BODY)
    };
    // 403, as a permission error in the caller's protocol (OpenAI's and Anthropic's
    // both name it `permission_error`).
    let refused = |resp: &crate::support::proxy::Resp| {
        assert_eq!(resp.status, 403, "{}", resp.body);
        assert_eq!(
            resp.json()["error"]["type"],
            "permission_error",
            "{}",
            resp.body
        );
    };
    let resp = page("https://example.com", "/v1/chat/completions");
    refused(&resp);
    assert_text(
        &resp.error_message(),
        "refused a request from a web page (Origin: https://example.com): with no client key \
         needed, any site the browser visits could spend your keys and logins through \
         Routeplane. Call Routeplane from a program, or a page on this machine (localhost); a \
         browser-based client needs a key: set `skip_auth: false` and list it under `keys:`",
    );
    // In the caller's protocol, and for a sandboxed frame or a file (`Origin: null`) too.
    refused(&page("null", "/v1/messages"));
    let resp = page("http://evil.example:4356", "/v1/models");
    assert_eq!(resp.status, 403, "{}", resp.body);
    assert_eq!(up.count(), 0, "nothing reached the source");
    // A page served from this machine (a local web UI), and a program, are let in.
    for origin in [
        "http://localhost:3000",
        "http://127.0.0.1:8080",
        "http://[::1]:5173",
    ] {
        assert_eq!(page(origin, "/v1/chat/completions").status, 200, "{origin}");
    }
    assert_eq!(
        p.send("POST", "/v1/chat/completions", &[], BODY).status,
        200
    );
    // With keys, the key decides: a page cannot send one it does not know.
    let keyed = Proxy::start_with(&config(&up), &[("CLIENT_KEY", "client-key-1")], &[]);
    let headers = [
        ("Origin", "https://example.com"),
        ("Authorization", "Bearer client-key-1"),
    ];
    let resp = keyed.send("POST", "/v1/chat/completions", &headers, BODY);
    assert_eq!(resp.status, 200, "{}", resp.body);
}

#[test]
fn a_page_that_points_its_own_name_here_is_refused_when_clients_need_no_key() {
    // DNS rebinding: a page at http://evil.example:PORT whose name then resolves to
    // 127.0.0.1 makes same-origin requests (a GET sends no `Origin`) and reads every
    // answer as its own site's. Its browser still sends the page's name as `Host`.
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start(&format!(
        "allowed_hosts: [routeplane]\nproviders:\n  local:\n    api_base: {}\n    models: [m]\n",
        up.url()
    ));
    let port = p.addr.rsplit_once(':').unwrap().1.to_string();
    let evil = format!("evil.example:{port}");
    let get = |host: &str, path: &str, more: &[(&str, &str)]| {
        let mut headers = vec![("Host", host)];
        headers.extend_from_slice(more);
        p.send("GET", path, &headers, b"")
    };
    let resp = get(&evil, "/v1/models", &[]);
    assert_eq!(resp.status, 403, "{}", resp.body);
    assert_eq!(resp.json()["error"]["type"], "permission_error");
    let message = format!(
        "refused a request addressed to `{evil}`, a name not known to be this machine: with \
         no client key needed, a web page whose name was pointed at this machine (DNS \
         rebinding) could read Routeplane's answers. Call Routeplane at 127.0.0.1, localhost \
         or another IP address; to call it by this name, list the name under \
         `allowed_hosts:`, or require client keys (`skip_auth: false` and `keys:`)"
    );
    assert_text(&resp.error_message(), &message);
    // Every answer a GET reads, each in its caller's protocol.
    for path in [
        "/status.json",
        "/metrics",
        "/routeplane/cooldowns",
        "/v1/models/m",
    ] {
        assert_eq!(get(&evil, path, &[]).status, 403, "{path}");
    }
    let resp = get(&evil, "/v1/models", &[("anthropic-version", "2023-06-01")]);
    assert_eq!((resp.status, &resp.json()["type"]), (403, &json!("error")));
    let resp = get(&evil, "/v1beta/models", &[]);
    assert_eq!(
        resp.json()["error"]["status"],
        "PERMISSION_DENIED",
        "{}",
        resp.body
    );
    // The status page, in a browser: the refusal as text.
    let resp = get(&evil, "/", &[("Accept", "text/html")]);
    assert_eq!(resp.status, 403);
    assert_eq!(
        resp.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_text(&resp.body, &message);
    // A POST with no `Origin` (not a browser's, but refused by its name all the same).
    let headers = [("Host", evil.as_str())];
    let resp = p.send("POST", "/v1/chat/completions", &headers, BODY);
    assert_eq!(resp.status, 403, "{}", resp.body);
    assert_eq!(up.count(), 0, "nothing reached the source");
    // `/health` tells nothing, and a container's health check calls it by a name.
    assert_eq!(get(&evil, "/health", &[]).status, 200);
    // Names no page can point here, and the one listed under `allowed_hosts`.
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        format!("192.168.1.20:{port}"),
        format!("app.localhost:{port}"),
        format!("RoutePlane:{port}"),
        "localhost".to_string(),
    ] {
        let resp = get(&host, "/v1/models", &[]);
        assert_eq!(resp.status, 200, "{host}: {}", resp.body);
    }
    let page = get(
        &format!("localhost:{port}"),
        "/",
        &[("Accept", "text/html")],
    );
    assert_eq!(page.status, 200);
    // No `Host` at all (an HTTP/1.0 tool) is no browser.
    let bare = p.raw("GET /v1/models HTTP/1.0\r\n\r\n");
    assert_eq!(bare.split(' ').nth(1), Some("200"), "{bare}");
    // With keys, the key decides: the name does not matter.
    let keyed = Proxy::start_with(&config(&up), &[("CLIENT_KEY", "client-key-1")], &[]);
    let key = ("Authorization", "Bearer client-key-1");
    let headers = [("Host", evil.as_str()), key];
    assert_eq!(keyed.send("GET", "/v1/models", &headers, b"").status, 200);
    let resp = keyed.send("POST", "/v1/chat/completions", &headers, BODY);
    assert_eq!(resp.status, 200, "{}", resp.body);
    let headers = [("Host", evil.as_str())];
    assert_eq!(keyed.send("GET", "/v1/models", &headers, b"").status, 401);
}

#[test]
fn allowed_hosts_takes_names_only() {
    let (path, validate, serve) = config_error("allowed_hosts: [\"http://mybox:4356\"]\n", &[]);
    let message = format!(
        "{path}:1:1: `allowed_hosts` lists `http://mybox:4356`, which is not a host name; \
         write names only, without a scheme or a port (`routeplane`, `mybox.lan`)\n"
    );
    assert_text(&validate, &format!("routeplane: invalid: {message}"));
    assert_text(&serve, &format!("routeplane: error: {message}"));
}

#[test]
fn a_request_by_this_machines_name_or_an_allowed_wildcard_gets_in_without_a_key() {
    // A client on the LAN calls `http://mybox:4356/` (the machine's hostname, or its mDNS
    // `mybox.local`) with the proxy on 0.0.0.0: Ollama lets that in, and so does Routeplane.
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let hostname = hostname.trim();
    assert!(
        !hostname.is_empty() && !hostname.eq_ignore_ascii_case("localhost"),
        "this test needs a machine with a name: {hostname:?}"
    );
    let short = hostname.split('.').next().unwrap();
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let start = |allowed: &str| {
        Proxy::start(&format!(
            "allowed_hosts: {allowed}\nproviders:\n  local:\n    api_base: {}\n    models: [m]\n",
            up.url()
        ))
    };
    let status = |p: &Proxy, host: &str, more: &[(&str, &str)]| {
        let port = p.addr.rsplit_once(':').unwrap().1;
        let host = format!("{host}:{port}");
        let mut headers = vec![("Host", host.as_str())];
        headers.extend_from_slice(more);
        p.send("GET", "/v1/models", &headers, b"").status
    };
    let p = start("[]");
    for host in [
        hostname.to_string(),
        hostname.to_uppercase(),
        format!("{short}.local"),
    ] {
        assert_eq!(status(&p, &host, &[]), 200, "{host}");
    }
    assert_eq!(status(&p, &format!("{short}.evil.example"), &[]), 403);
    // `*.example.com`: any name under it, not `example.com` itself.
    let p = start("[\"*.example.com\"]");
    for (host, want) in [
        ("api.example.com", 200),
        ("A.B.Example.Com", 200),
        ("example.com", 403),
        ("example.com.evil.example", 403),
        ("badexample.com", 403),
    ] {
        assert_eq!(status(&p, host, &[]), want, "{host}");
    }
    // `*`: every name, for a user behind their own reverse proxy; a web page from any
    // site is still refused, since `*` says nothing of pages.
    let p = start("[\"*\"]");
    assert_eq!(status(&p, "evil.example", &[]), 200);
    let page = [("Origin", "https://evil.example")];
    assert_eq!(status(&p, "evil.example", &page), 403);
    // `config validate` takes the two wildcards, and names a malformed one's forms.
    let (ok, stderr) = validate("allowed_hosts: [\"*\", \"*.example.com\", mybox]\n", &[]);
    assert!(ok, "{stderr}");
    for bad in ["*foo", "a.*.b"] {
        let (path, validate, serve) = config_error(&format!("allowed_hosts: [\"{bad}\"]\n"), &[]);
        let message = format!(
            "{path}:1:1: `allowed_hosts` lists `{bad}`, which is not a wildcard Routeplane \
             reads: write `*` for every name, or `*.example.com` for every name under \
             example.com\n"
        );
        assert_text(&validate, &format!("routeplane: invalid: {message}"));
        assert_text(&serve, &format!("routeplane: error: {message}"));
    }
}

#[test]
fn a_browsers_preflight_is_answered_when_keys_are_set_and_the_key_decides() {
    // A browser sends no key with its preflight (`OPTIONS`): asked for one (401), a
    // browser-based client that has a key never got to send it.
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start_with(&config(&up), &[("CLIENT_KEY", "client-key-1")], &[]);
    let page = "https://chat.example";
    let preflight = |path: &str, method: &'static str| {
        let headers = [
            ("Origin", page),
            ("Access-Control-Request-Method", method),
            (
                "Access-Control-Request-Headers",
                "authorization, content-type",
            ),
        ];
        p.send("OPTIONS", path, &headers, b"")
    };
    for (path, method, methods) in [
        ("/v1/chat/completions", "POST", "POST"),
        ("/v1/messages", "POST", "POST"),
        ("/v1beta/models/m:streamGenerateContent", "POST", "POST"),
        ("/v1/models", "GET", "GET, HEAD"),
    ] {
        let resp = preflight(path, method);
        assert_eq!(resp.status, 200, "{path}: {}", resp.body);
        assert_eq!(resp.header("access-control-allow-origin"), Some(page));
        assert_eq!(resp.header("access-control-allow-methods"), Some(methods));
        assert_eq!(
            resp.header("access-control-allow-headers"),
            Some("authorization, content-type")
        );
        assert_eq!(resp.body, "");
    }
    // The answer names the page, so that it can read it; a wrong or missing key is
    // still a 401, which the page can read too.
    let keyed = [("Origin", page), ("Authorization", "Bearer client-key-1")];
    let resp = p.send("POST", "/v1/chat/completions", &keyed, BODY);
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("access-control-allow-origin"), Some(page));
    let resp = p.send("POST", "/v1/chat/completions", &[("Origin", page)], BODY);
    assert_eq!(resp.status, 401, "{}", resp.body);
    assert_eq!(resp.header("access-control-allow-origin"), Some(page));
    assert_eq!(up.count(), 1, "only the keyed request reached the source");
    // Nothing is granted where no key is needed: a path open without one is answered
    // as it is without keys, and a program (no `Origin`) gets no CORS header.
    let resp = preflight("/health", "GET");
    assert_eq!(resp.status, 405, "{}", resp.body);
    assert!(resp.header("access-control-allow-origin").is_none());
    assert!(
        resp.error_message()
            .contains("(CORS) preflight, which Routeplane does not answer"),
        "{}",
        resp.body
    );
    let resp = p.send("GET", "/health", &[("Origin", page)], b"");
    assert!(resp.header("access-control-allow-origin").is_none());
    let resp = p.send(
        "POST",
        "/v1/chat/completions",
        &[("Authorization", "Bearer client-key-1")],
        BODY,
    );
    assert!(resp.header("access-control-allow-origin").is_none());
}

#[test]
fn a_busy_proxy_names_the_page_in_its_503_only_when_keys_are_set() {
    // A full proxy answers 503 before it looks at the key; a page that cannot read that
    // answer sees a CORS error instead of "retry shortly".
    let page = "https://chat.example";
    let up = MockUpstream::always(Reply::chat_stream(6, Duration::from_millis(500)));
    let keyed = while_full(
        &up,
        &config(&up),
        &[&[("Origin", page)], &[], &[("Origin", "a page")]],
    );
    assert!(keyed.iter().all(|r| r.status == 503), "{keyed:?}");
    assert_eq!(keyed[0].header("access-control-allow-origin"), Some(page));
    assert_eq!(keyed[0].header("vary"), Some("Origin"));
    assert_eq!(keyed[0].header("retry-after"), Some("1"));
    // A program (no `Origin`) gets no CORS header; nor does an origin that cannot be
    // named as it came, as with `guard::check`.
    assert!(keyed[1].header("access-control-allow-origin").is_none());
    assert!(keyed[2].header("access-control-allow-origin").is_none());
    // Without keys nothing is granted, busy or not.
    let up = MockUpstream::always(Reply::chat_stream(6, Duration::from_millis(500)));
    let open = format!(
        "providers:\n  local:\n    api_base: {}\n    models: [m]\n",
        up.url()
    );
    let open = while_full(&up, &open, &[&[("Origin", page)]]);
    assert_eq!(open[0].status, 503, "{}", open[0].body);
    assert!(open[0].header("access-control-allow-origin").is_none());
}

/// Starts a proxy from `yaml` (with `CLIENT_KEY` set) with one worker, holds it with a
/// keyed stream from `up`, its only upstream, and sends a chat request with each of
/// `asks`' headers while it is held: their answers.
fn while_full(
    up: &MockUpstream,
    yaml: &str,
    asks: &[&[(&str, &str)]],
) -> Vec<crate::support::proxy::Resp> {
    let yaml = format!("workers: 1\nlimits:\n  queue_wait_secs: 0.2\n{yaml}");
    let p = Proxy::start_with(&yaml, &[("CLIENT_KEY", "client-key-1")], &[]);
    let client = (*p).clone();
    let held = std::thread::spawn(move || {
        let body = json!({"model": "m", "stream": true, "messages": []}).to_string();
        let auth = [("Authorization", "Bearer client-key-1")];
        client.stream_raw("POST", "/v1/chat/completions", &auth, body.as_bytes())
    });
    assert!(
        wait_until(Duration::from_secs(10), || up.count() == 1),
        "the held stream never reached the upstream"
    );
    let answers = asks
        .iter()
        .map(|headers| p.send("POST", "/v1/chat/completions", headers, BODY))
        .collect();
    let held = held.join().unwrap();
    assert_eq!(held.status, 200, "the held stream: {}", held.text());
    assert_eq!(up.count(), 1, "no refused request went upstream");
    answers
}
