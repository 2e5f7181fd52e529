//! A mock OAuth server: code exchange, refresh with rotation, device codes.
//!
//! Every refresh returns a new refresh token and invalidates the old one, so a client
//! that loses a rotated token fails the next refresh, as real providers behave.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::upstream::{MockUpstream, Recorded, Reply};

/// An id token whose claims carry a ChatGPT account id.
pub fn id_token(account: &str) -> String {
    let b64 = |s: &str| {
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for c in s.as_bytes().chunks(3) {
            let n = c
                .iter()
                .enumerate()
                .fold(0u32, |a, (i, b)| a | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=c.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    };
    let claims = json!({"https://api.openai.com/auth": {"chatgpt_account_id": account}, "email": "u@example.com"});
    format!(
        "{}.{}.sig",
        b64(r#"{"alg":"none"}"#),
        b64(&claims.to_string())
    )
}

#[derive(Debug, Default)]
struct State {
    /// The refresh token that is currently valid.
    valid_refresh: String,
    /// How many refreshes succeeded.
    refreshes: usize,
    /// How many token polls of the device flow stay pending.
    pending_polls: usize,
    /// Seconds the issued access tokens live.
    expires_in: u64,
    /// Issued generations.
    generation: usize,
    /// How long the token endpoint takes to answer.
    delay: std::time::Duration,
}

/// A running mock OAuth server.
pub struct MockOAuth {
    server: MockUpstream,
    state: Arc<Mutex<State>>,
}

/// Reads a JSON or form body into a JSON object.
fn fields(req: &Recorded) -> Value {
    if let Ok(v) = serde_json::from_slice::<Value>(&req.body) {
        return v;
    }
    let text = String::from_utf8_lossy(&req.body).to_string();
    let map: serde_json::Map<String, Value> = text
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| {
            (
                k.to_string(),
                json!(v.replace("%2F", "/").replace("%3A", ":")),
            )
        })
        .collect();
    Value::Object(map)
}

impl MockOAuth {
    /// Starts a server whose access tokens live `expires_in` seconds; `rt-0` is a valid refresh token.
    pub fn start(expires_in: u64) -> MockOAuth {
        let state = Arc::new(Mutex::new(State {
            valid_refresh: "rt-0".into(),
            expires_in,
            pending_polls: 2,
            ..State::default()
        }));
        let s = Arc::clone(&state);
        let server = MockUpstream::start(move |req| {
            let f = fields(req);
            // Slept before the state is read: requests sent meanwhile are all in flight.
            let delay = s.lock().unwrap().delay;
            std::thread::sleep(delay);
            let mut st = s.lock().unwrap();
            let issue = |st: &mut State| {
                st.generation += 1;
                let n = st.generation;
                st.valid_refresh = format!("rt-{n}");
                Reply::json(
                    200,
                    json!({"access_token": format!("at-{n}"), "refresh_token": format!("rt-{n}"), "expires_in": st.expires_in, "id_token": id_token("acct_1"), "token_type": "Bearer"}),
                )
            };
            match (req.path.as_str(), f["grant_type"].as_str()) {
                ("/token", Some("authorization_code")) => {
                    if f["code"] == "good-code"
                        && f["code_verifier"].as_str().is_some_and(|v| !v.is_empty())
                    {
                        issue(&mut st)
                    } else {
                        Reply::json(
                            400,
                            json!({"error": "invalid_grant", "error_description": "bad code"}),
                        )
                    }
                }
                ("/token", Some("refresh_token")) => {
                    if f["refresh_token"] == json!(st.valid_refresh) {
                        st.refreshes += 1;
                        issue(&mut st)
                    } else {
                        Reply::json(
                            400,
                            json!({"error": "invalid_grant", "error_description": "refresh token reused or revoked"}),
                        )
                    }
                }
                ("/device/usercode", _) => Reply::json(
                    200,
                    json!({"device_auth_id": "dev-1", "user_code": "ABCD-1234", "interval": "0"}),
                ),
                ("/device/token", _) => {
                    if st.pending_polls > 0 {
                        st.pending_polls -= 1;
                        Reply::json(
                            403,
                            json!({"error": {"code": "deviceauth_authorization_pending"}}),
                        )
                    } else {
                        Reply::json(
                            200,
                            json!({"authorization_code": "good-code", "code_verifier": "server-verifier", "code_challenge": "x"}),
                        )
                    }
                }
                _ => Reply::json(404, json!({"error": "not_found"})),
            }
        });
        MockOAuth { server, state }
    }

    /// The base URL (no `/v1`).
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port())
    }

    /// A provider block's `auth:` map pointing at this server.
    pub fn auth_block(&self, redirect_uri: &str) -> String {
        let b = self.base();
        format!(
            "    auth:\n      authorize_url: {b}/authorize\n      token_url: {b}/token\n      device_url: {b}/device/usercode\n      device_token_url: {b}/device/token\n      device_verify_url: {b}/device\n      redirect_uri: {redirect_uri}\n"
        )
    }

    /// Changes how long the tokens issued from now on live.
    pub fn set_expires_in(&self, secs: u64) {
        self.state.lock().unwrap().expires_in = secs;
    }

    /// Makes the token endpoint take `delay` to answer from now on.
    pub fn set_delay(&self, delay: std::time::Duration) {
        self.state.lock().unwrap().delay = delay;
    }

    /// Successful refreshes so far.
    pub fn refreshes(&self) -> usize {
        self.state.lock().unwrap().refreshes
    }

    /// The refresh token the server accepts now.
    pub fn valid_refresh(&self) -> String {
        self.state.lock().unwrap().valid_refresh.clone()
    }

    /// Every request the server received.
    pub fn requests(&self) -> Vec<Recorded> {
        self.server.requests()
    }
}
