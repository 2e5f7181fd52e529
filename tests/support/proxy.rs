//! The proxy under test: the real binary, started on a free port with a config file.
//!
//! `Proxy::start(yaml)` writes the config into a fresh directory and starts
//! `routeplane -c FILE --listen 127.0.0.1:0`; the binary's first stderr line names the
//! port it bound, so there is no port race. The process is killed on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::Dir;

/// The path of the binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_routeplane")
}

/// Variables that would hand a test's routeplane the developer's credentials: a key
/// makes it list models over the internet, and the auth file holds real logins.
pub const CREDENTIAL_VARS: &[&str] = &[
    "OPENAI_API_KEY",
    "OPENROUTER_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "MISTRAL_API_KEY",
    "ROUTEPLANE_OPENAI_API_KEY",
    "ROUTEPLANE_OPENROUTER_API_KEY",
    "ROUTEPLANE_ANTHROPIC_API_KEY",
    "ROUTEPLANE_GEMINI_API_KEY",
    "ROUTEPLANE_MISTRAL_API_KEY",
    "ROUTEPLANE_AUTH_FILE",
];

/// Keeps `cmd` away from the developer's files and credentials: `home` is its home and
/// config directory, the data and state directories default below it, and no
/// [`CREDENTIAL_VARS`] reach it.
pub fn isolate<'a>(cmd: &'a mut Command, home: &std::path::Path) -> &'a mut Command {
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env_remove("XDG_DATA_HOME")
        .env_remove("XDG_STATE_HOME");
    for var in CREDENTIAL_VARS {
        cmd.env_remove(var);
    }
    cmd
}

/// The routeplane command, [`isolate`]d in `dir` (its home) and run there, where a test
/// writes its `routeplane.yaml`.
pub fn routeplane_in(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(bin());
    isolate(&mut cmd, dir).current_dir(dir);
    cmd
}

/// The config, with the default ports of local servers it does not name left alone:
/// this machine may run Ollama, or anything else on 8080. A config that says where
/// `detect` stands, or is not block YAML, is kept as it is.
pub fn hermetic(yaml: &str) -> String {
    let lines: Vec<&str> = yaml.lines().collect();
    if yaml.contains("default_ports") || yaml.trim_start().starts_with('{') {
        return yaml.to_string();
    }
    let mut out = String::new();
    let mut added = false;
    for (i, line) in lines.iter().enumerate() {
        out.push_str(line);
        out.push('\n');
        if line.starts_with("detect:") {
            if line.trim_end() != "detect:" {
                return yaml.to_string();
            }
            let next = lines.get(i + 1).copied().unwrap_or("  ");
            let indent = &next[..next.len() - next.trim_start().len()];
            let indent = if indent.is_empty() { "  " } else { indent };
            out.push_str(&format!("{indent}default_ports: false\n"));
            added = true;
        }
    }
    if !added {
        out.push_str("detect:\n  default_ports: false\n");
    }
    out
}

/// A running proxy.
pub struct Proxy {
    child: Child,
    /// A client for it (also reachable through `Deref`).
    pub client: Client,
    log: Arc<Mutex<Vec<String>>>,
    /// The directory holding its config (and anything else a test puts there).
    pub dir: Dir,
}

/// A complete HTTP answer.
#[derive(Debug)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body text.
    pub body: String,
}

impl Resp {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }

    /// A header value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `error.message` of an error body (OpenAI's and Anthropic's shapes alike).
    pub fn error_message(&self) -> String {
        let v = self.json();
        match v["error"]["message"].as_str() {
            Some(m) => m.to_string(),
            None => panic!("no error.message in: {}", self.body),
        }
    }
}

/// A streamed answer: the head, then each HTTP chunk with its arrival time.
#[derive(Debug)]
pub struct Streamed {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// `(time since the request was sent, chunk text)`.
    pub chunks: Vec<(Duration, String)>,
    /// The stream ended with the terminating zero-length chunk.
    pub complete: bool,
}

impl From<Streamed> for Resp {
    /// The answer whole: its chunks joined.
    fn from(s: Streamed) -> Resp {
        Resp {
            status: s.status,
            headers: s.headers,
            body: s.chunks.into_iter().map(|(_, c)| c).collect(),
        }
    }
}

impl Streamed {
    /// All chunk text joined.
    pub fn text(&self) -> String {
        self.chunks.iter().map(|(_, c)| c.as_str()).collect()
    }

    /// The `data:` payloads in order.
    pub fn data(&self) -> Vec<String> {
        self.text()
            .split("\n\n")
            .flat_map(|ev| {
                ev.lines()
                    .filter_map(|l| l.strip_prefix("data: "))
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// A header value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Proxy {
    /// Starts the proxy with a config.
    pub fn start(yaml: &str) -> Proxy {
        Proxy::start_with(yaml, &[], &[])
    }

    /// Starts the proxy with a config, extra environment variables and extra arguments.
    pub fn start_with(yaml: &str, env: &[(&str, &str)], args: &[&str]) -> Proxy {
        Proxy::start_in(Command::new(bin()), yaml, env, args)
    }

    /// Starts the proxy through `launcher` (a program that runs the command line after
    /// its own arguments, as `prlimit --nofile=256:` does), with a config.
    pub fn start_through(launcher: &[&str], yaml: &str) -> Proxy {
        let mut cmd = Command::new(launcher[0]);
        cmd.args(&launcher[1..]).arg(bin());
        Proxy::start_in(cmd, yaml, &[], &[])
    }

    /// Starts `cmd` (the binary, or a launcher ending with it) with a config, extra
    /// environment variables and extra arguments.
    fn start_in(mut cmd: Command, yaml: &str, env: &[(&str, &str)], args: &[&str]) -> Proxy {
        let dir = Dir::new();
        let config = dir.write("routeplane.yaml", &hermetic(yaml));
        isolate(&mut cmd, dir.path())
            .arg("-c")
            .arg(&config)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .current_dir(dir.path())
            .env("XDG_DATA_HOME", dir.path().join("data"))
            // The usage ledger's default home: never the real one.
            .env("XDG_STATE_HOME", dir.path().join("state"))
            .envs(env.iter().copied());
        Proxy::spawn(cmd, dir)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `HUP`, …) with the system's `kill`.
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([format!("-{name}"), self.pid().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{name} failed");
    }

    /// Waits up to `limit` for the process to exit; its exit code, if it did.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Lines the proxy wrote to stderr so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits for a log line containing `needle`.
    pub fn wait_log(&self, needle: &str) -> String {
        let mut found = String::new();
        let ok = super::wait_until(Duration::from_secs(10), || {
            match self.log().into_iter().find(|l| l.contains(needle)) {
                Some(l) => {
                    found = l;
                    true
                }
                None => false,
            }
        });
        assert!(ok, "no log line with {needle:?} in {:#?}", self.log());
        found
    }

    /// The value of one series in `GET /metrics` (`name{labels}`), if it is there.
    pub fn metric(&self, series: &str) -> Option<String> {
        let text = self.get("/metrics").body;
        text.lines().find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')
                .map(str::to_string)
        })
    }

    /// `GET /status.json`'s entry for the source `id`.
    #[track_caller]
    pub fn source_status(&self, id: &str) -> serde_json::Value {
        let status = self.get("/status.json").json();
        let sources = status["sources"].as_array().cloned().unwrap_or_default();
        sources
            .into_iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("no {id} in {status}"))
    }

    /// A client that leaves while its answer is awaited: POSTs `body`, waits until
    /// `asked` says the upstream has the request (and a little more, for the proxy to be
    /// waiting on it), then closes the connection. The request's log line (status 499)
    /// and its `total_ms`.
    #[track_caller]
    pub fn leave_once_asked(
        &self,
        path: &str,
        body: serde_json::Value,
        asked: impl FnMut() -> bool,
    ) -> (String, f64) {
        let conn = self.send_only(path, body);
        assert!(
            super::wait_until(Duration::from_secs(5), asked),
            "the upstream was never asked"
        );
        std::thread::sleep(Duration::from_millis(300));
        drop(conn);
        let line = self.wait_log("status=499");
        let total = logged_ms(&line, "total_ms");
        (line, total)
    }
}

/// The milliseconds a request log line gives for `field` (`total_ms`, `ttfb_ms`).
#[track_caller]
pub fn logged_ms(line: &str, field: &str) -> f64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(field)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field}= in {line}"))
}

/// A client of a running proxy; cheap to clone into another thread.
#[derive(Debug, Clone)]
pub struct Client {
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl Client {
    /// POSTs JSON.
    pub fn post(&self, path: &str, body: serde_json::Value) -> Resp {
        self.send("POST", path, &[], body.to_string().as_bytes())
    }

    /// GETs a path.
    pub fn get(&self, path: &str) -> Resp {
        self.send("GET", path, &[], b"")
    }

    /// The ids `GET /v1/models` lists, in its order.
    pub fn model_ids(&self) -> Vec<String> {
        self.get("/v1/models").json()["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect()
    }

    /// Sends one request on a fresh connection and reads the whole answer.
    pub fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        self.stream_raw(method, path, headers, body).into()
    }

    /// A connection to keep open between requests (see [`post_on`]).
    pub fn kept_alive(&self) -> TcpStream {
        let conn = TcpStream::connect(&self.addr).expect("connect to proxy");
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        conn
    }

    /// POSTs JSON and records each chunk of the answer as it arrives.
    pub fn stream(&self, path: &str, body: serde_json::Value) -> Streamed {
        self.stream_raw("POST", path, &[], body.to_string().as_bytes())
    }

    /// Sends a request and reads the answer chunk by chunk, timing each.
    pub fn stream_raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Streamed {
        let mut conn = TcpStream::connect(&self.addr).expect("connect to proxy");
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        // A `Host` among `headers` (a page's own name) replaces the proxy's address.
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
            head.push_str(&format!("Host: {}\r\n", self.addr));
        }
        if !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        {
            head.push_str("Content-Type: application/json\r\n");
        }
        for (n, v) in headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let sent = Instant::now();
        conn.write_all(head.as_bytes()).unwrap();
        conn.write_all(body).unwrap();
        read_response(conn, sent)
    }
}

impl std::ops::Deref for Proxy {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

/// POSTs JSON on `conn`, a connection kept open between requests (no `Connection:
/// close`; see [`Client::kept_alive`]), and reads the whole answer: a kept-alive client, whose requests the proxy
/// serves on one thread.
pub fn post_on(conn: &TcpStream, path: &str, body: serde_json::Value) -> Resp {
    let body = body.to_string();
    let mut w = conn.try_clone().expect("clone the connection");
    write!(
        w,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    read_response(w, Instant::now()).into()
}

/// Reads a response head and then its body (chunked or with a length), timing chunks.
pub fn read_response(conn: TcpStream, sent: Instant) -> Streamed {
    let mut r = BufReader::new(conn);
    let mut status_line = String::new();
    r.read_line(&mut status_line).expect("status line");
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).expect("header line");
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let mut chunks = Vec::new();
    let mut complete = false;
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut size = String::new();
            if r.read_line(&mut size).unwrap_or(0) == 0 {
                break;
            }
            let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
                break;
            };
            let mut data = vec![0; n + 2];
            if r.read_exact(&mut data).is_err() {
                break;
            }
            if n == 0 {
                complete = true;
                break;
            }
            data.truncate(n);
            chunks.push((sent.elapsed(), String::from_utf8_lossy(&data).into_owned()));
        }
    } else if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        let mut data = vec![0; len];
        r.read_exact(&mut data).expect("body");
        chunks.push((sent.elapsed(), String::from_utf8_lossy(&data).into_owned()));
        complete = true;
    } else {
        let mut data = Vec::new();
        let _ = r.read_to_end(&mut data);
        chunks.push((sent.elapsed(), String::from_utf8_lossy(&data).into_owned()));
        complete = true;
    }
    Streamed {
        status,
        headers,
        chunks,
        complete,
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proxy {
    /// Starts a proxy from a command already set up (another binary, a chroot wrapper);
    /// stderr is read for the port as in `start_with`, and a `0.0.0.0` address is reached
    /// through 127.0.0.1.
    pub fn spawn(mut cmd: Command, dir: Dir) -> Proxy {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start routeplane");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let lines = Arc::clone(&log);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or("");
                    let _ = tx.send(addr.replace("0.0.0.0:", "127.0.0.1:"));
                }
                lines.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("routeplane did not start: {:?}", log.lock().unwrap());
            }
        };
        Proxy {
            child,
            client: Client { addr },
            log,
            dir,
        }
    }

    /// Starts the proxy as a new user first runs it: no `-c`, no `routeplane.yaml` in its
    /// directory or the user's config directory, no provider keys in the environment.
    pub fn start_without_config(env: &[(&str, &str)]) -> Proxy {
        let dir = Dir::new();
        let mut cmd = Command::new(bin());
        isolate(&mut cmd, dir.path())
            .args(["--listen", "127.0.0.1:0"])
            .current_dir(dir.path())
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .env("XDG_STATE_HOME", dir.path().join("state"))
            .envs(env.iter().copied());
        Proxy::spawn(cmd, dir)
    }
}

impl Client {
    /// Starts a streamed chat request for `model`, reads the first bytes of the answer,
    /// and hangs up: a client that leaves mid-stream.
    pub fn leave_mid_stream(&self, model: &str) {
        let body = serde_json::json!({"model": model, "stream": true, "messages": []}).to_string();
        let mut conn = TcpStream::connect(&self.addr).expect("connect to proxy");
        write!(
            conn,
            "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut buf = [0u8; 512];
        let _ = conn.read(&mut buf).unwrap();
    }

    /// POSTs JSON on a fresh connection and returns the connection with nothing read:
    /// drop it to be a client that left while its answer was awaited.
    pub fn send_only(&self, path: &str, body: serde_json::Value) -> TcpStream {
        let body = body.to_string();
        let mut conn = TcpStream::connect(&self.addr).expect("connect to proxy");
        write!(
            conn,
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        conn
    }

    /// Sends raw request bytes on a fresh connection and reads until the proxy closes
    /// it (send `Connection: close`): for answers `read_response` cannot frame, like
    /// the head-only answer to `HEAD`.
    pub fn raw(&self, request: &str) -> String {
        let mut conn = TcpStream::connect(&self.addr).expect("connect to proxy");
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        conn.write_all(request.as_bytes()).unwrap();
        let mut out = Vec::new();
        let _ = conn.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// GETs `path` from `addr` on a fresh connection: the answer's status, or None when
/// nothing listens there (yet) or the answer is not HTTP.
pub fn try_get_status(addr: &str, path: &str) -> Option<u16> {
    let mut conn = TcpStream::connect(addr).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    conn.write_all(request.as_bytes()).ok()?;
    let mut out = Vec::new();
    let _ = conn.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}
