//! OAuth mechanics shared by every subscription: PKCE, random state, token requests, JWT claims.
//!
//! Provider-neutral: the endpoints, client ids and body encodings come from the
//! provider files (`anthropic.rs`, `openai_codex.rs`). The PKCE verifier never leaves
//! the process except in the token request; `state` is its own random value.

use std::io::Read;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::base64;
use crate::error::Error;
use crate::log::Secret;
use crate::upstream::{Client, KEEP_WAITING, Net, SendError};

/// Tokens as a provider returned them, with an absolute expiry.
#[derive(Clone, PartialEq, Eq)]
pub struct Tokens {
    /// Bearer token for API calls.
    pub access: Secret,
    /// Token that buys the next access token (may rotate on each use).
    pub refresh: Secret,
    /// Unix seconds when `access` expires (0 = unknown).
    pub expires_at: u64,
    /// OpenAI's id token (carries the ChatGPT account id).
    pub id_token: Option<Secret>,
    /// ChatGPT account id, for the `chatgpt-account-id` header.
    pub account_id: Option<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("expires_at", &self.expires_at)
            .field("account_id", &self.account_id)
            .finish_non_exhaustive()
    }
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `n` bytes from the operating system's randomness.
pub fn random_bytes(n: usize) -> Result<Vec<u8>, Error> {
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| Error::io("cannot read /dev/urandom", e))?;
    Ok(buf)
}

/// A PKCE pair: `(verifier, S256 challenge)`.
pub fn pkce() -> Result<(Secret, String), Error> {
    let verifier = base64::encode(&random_bytes(32)?);
    let challenge = challenge_for(&verifier);
    Ok((Secret::new(verifier), challenge))
}

/// The S256 challenge of a verifier: base64url(SHA-256(verifier)).
pub fn challenge_for(verifier: &str) -> String {
    base64::encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()).as_ref())
}

/// A random `state` value, unrelated to the verifier.
pub fn state() -> Result<String, Error> {
    Ok(base64::encode(&random_bytes(24)?))
}

/// The claims of a JWT, unverified (only read for ids and expiry).
pub fn jwt_claims(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    serde_json::from_slice(&base64::decode(payload)?).ok()
}

/// Percent-encodes a query or form value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char);
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Decodes a percent-encoded query value (`+` is a space).
pub fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A `k=v&k=v` query string or form body.
pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The value of `key` in a query string.
pub fn query_value(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (decode(k) == key).then(|| decode(v))
    })
}

/// How a token request body is encoded.
#[derive(Debug, Clone, Copy)]
pub enum Encoding {
    /// `application/json`.
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
}

/// How long a token endpoint is given to connect, and again to answer (at most
/// `timeouts.first_byte_secs`): a refresh holds up every request for its login, which
/// must not wait the minutes a model may take for its first token.
pub const TOKEN_WAIT: Duration = Duration::from_secs(10);

/// Why a token request got no tokens, by kind, so a caller tells a refusal for good from
/// an endpoint down for now by type rather than by its words.
#[derive(Debug)]
pub enum TokenFailure {
    /// No usable answer: the endpoint could not be reached, did not answer in time, its
    /// answer could not be read, or a 2xx came without the tokens. What happened.
    NoTokens(String),
    /// The endpoint answered `status`, not 2xx, to `what` (`refresh`, `the code
    /// exchange`), in its own words `detail` (escaped, cut short, the grant masked).
    Answered {
        /// What was asked.
        what: &'static str,
        /// The status it answered.
        status: u16,
        /// Its words, as [`error_text`] gives them without the status.
        detail: String,
        /// A 4xx OAuth error answer other than a pause (`invalid_grant`, a revoked
        /// token): the endpoint's final word on this grant.
        for_good: bool,
    },
}

impl TokenFailure {
    /// The failure in words: `refresh failed (503: …)`, or what kept the tokens away.
    pub fn words(&self) -> String {
        match self {
            TokenFailure::NoTokens(why) => why.clone(),
            TokenFailure::Answered {
                what,
                status,
                detail,
                ..
            } => format!("{what} failed ({status}: {detail})"),
        }
    }
}

impl From<TokenFailure> for Error {
    fn from(f: TokenFailure) -> Error {
        match f {
            TokenFailure::Answered { for_good: true, .. } => Error::AuthRefused(f.words()),
            f => Error::Auth(f.words()),
        }
    }
}

/// POSTs to a token endpoint; the JSON answer on 2xx, else an error with the provider's words.
/// `setting` is where `url` is set (`auth: token_url`), for the hint when it cannot be
/// reached: not `api_base`, which no auth endpoint is built on.
pub fn post(
    client: &Client,
    url: &str,
    setting: &str,
    body: &[(&str, &str)],
    encoding: Encoding,
) -> Result<(u16, Value), TokenFailure> {
    let (bytes, content_type) = match encoding {
        Encoding::Json => {
            let map: serde_json::Map<String, Value> = body
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect();
            (
                Value::Object(map).to_string().into_bytes(),
                "application/json",
            )
        }
        Encoding::Form => (form(body).into_bytes(), "application/x-www-form-urlencoded"),
    };
    let headers = [
        ("content-type".into(), content_type.into()),
        ("accept".into(), "application/json".into()),
    ];
    let shown = crate::log::shown_url(url);
    let reply = client
        .post_within(
            url,
            &headers,
            &bytes,
            TOKEN_WAIT.min(client.first_byte_timeout()),
            KEEP_WAITING,
        )
        .map_err(|e| match e {
            SendError::Timeout(_) => {
                TokenFailure::NoTokens(format!("{shown} did not answer in time"))
            }
            // Most often no network at all (a laptop offline) and a default URL, which no
            // setting of the user's names: the network first, the setting second.
            SendError::Network(Net::Dns, _) => TokenFailure::NoTokens(format!(
                "cannot reach {shown}: no network or DNS here (`{}` does not resolve); if you \
                 set `{setting}`, check it",
                crate::log::host_of(url)
            )),
            // Only a look-up's message names a setting, and that is said above.
            e => TokenFailure::NoTokens(format!("cannot reach {shown}: {e}")),
        })?;
    let status = reply.status;
    let bytes = reply
        .read_all(1024 * 1024, KEEP_WAITING)
        .map_err(|e| TokenFailure::NoTokens(format!("reading the answer of {shown}: {e}")))?;
    let mut value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !(200..300).contains(&status) {
        // A refusal may quote the grant it refused (a refresh token, a code): its words
        // are printed, logged and told to clients.
        let sent = body
            .iter()
            .filter(|(name, _)| !PUBLIC_FIELDS.contains(name))
            .map(|(_, value)| *value)
            .filter(|v| v.len() >= crate::upstream::SHORTEST_CREDENTIAL);
        for secret in sent {
            mask_strings(&mut value, secret);
        }
    }
    Ok((status, value))
}

/// The fields of a token request that hold no secret: the rest (a refresh token, a
/// code, a verifier, a device's id) are masked in a refusal's words.
const PUBLIC_FIELDS: [&str; 3] = ["grant_type", "client_id", "redirect_uri"];

/// Every string in `v` with `secret` in it as `***`.
fn mask_strings(v: &mut Value, secret: &str) {
    match v {
        Value::String(s) if s.contains(secret) => *s = s.replace(secret, "***"),
        Value::Array(items) => items.iter_mut().for_each(|i| mask_strings(i, secret)),
        Value::Object(map) => map.values_mut().for_each(|i| mask_strings(i, secret)),
        _ => {}
    }
}

/// Reads tokens from a token endpoint's 2xx answer; `previous` fills what a refresh omits.
pub fn tokens_from(v: &Value, previous: Option<&Tokens>) -> Result<Tokens, Error> {
    let access = v["access_token"]
        .as_str()
        .ok_or_else(|| Error::Auth("the token endpoint answered without an access token".into()))?;
    // A refresh token may rotate: keep the new one, else the one we had.
    let refresh = v["refresh_token"]
        .as_str()
        .map(Secret::new)
        .or_else(|| previous.map(|p| p.refresh.clone()))
        .ok_or_else(|| Error::Auth("the token endpoint answered without a refresh token".into()))?;
    let expires_at = match v["expires_in"].as_u64() {
        // Saturating: a lifetime past u64 would wrap to a token already expired.
        Some(secs) => now().saturating_add(secs),
        None => jwt_claims(access)
            .and_then(|c| c["exp"].as_u64())
            .unwrap_or(0),
    };
    let id_token = v["id_token"]
        .as_str()
        .map(Secret::new)
        .or_else(|| previous.and_then(|p| p.id_token.clone()));
    let account_id = id_token
        .as_ref()
        .and_then(|t| jwt_claims(t.expose()))
        .and_then(|c| {
            c["https://api.openai.com/auth"]["chatgpt_account_id"]
                .as_str()
                .map(str::to_string)
        })
        .or_else(|| previous.and_then(|p| p.account_id.clone()));
    Ok(Tokens {
        access: Secret::new(access),
        refresh,
        expires_at,
        id_token,
        account_id,
    })
}

/// The tokens of a 2xx token answer; otherwise why not, with `what` failed and the
/// provider's words. `previous` fills what a refresh answer leaves out.
pub fn expect_tokens(
    status: u16,
    v: &Value,
    what: &'static str,
    previous: Option<&Tokens>,
) -> Result<Tokens, TokenFailure> {
    if !(200..300).contains(&status) {
        // A 4xx other than a pause is the endpoint's final word on this grant
        // (`invalid_grant`, revoked, unknown client), when it is an OAuth error answer
        // (RFC 6749 5.2: JSON with `error`); 5xx and 429 may pass, and so may a web
        // page: a CDN's challenge or a network's block page says nothing of the grant.
        let for_good = (400..500).contains(&status)
            && status != 408
            && status != 429
            && v.get("error").is_some();
        return Err(TokenFailure::Answered {
            what,
            status,
            detail: error_detail(v),
            for_good,
        });
    }
    tokens_from(v, previous).map_err(|e| match e {
        Error::Auth(why) => TokenFailure::NoTokens(why),
        e => TokenFailure::NoTokens(e.to_string()),
    })
}

/// The provider's error words from a failed token answer ([`post`] masked what it
/// sent in them), as a terminal may show them: `STATUS: WORDS`.
pub fn error_text(status: u16, v: &Value) -> String {
    format!("{status}: {}", error_detail(v))
}

/// [`error_text`] without the status.
fn error_detail(v: &Value) -> String {
    let detail = v["error_description"]
        .as_str()
        .or(v["error"]["message"].as_str())
        .or(v["error"].as_str())
        .or(v["message"].as_str())
        .unwrap_or(if v.is_null() {
            "an answer that is not JSON"
        } else {
            "no details"
        });
    crate::log::printable(detail, SAID_AT_MOST)
}

/// The most characters of a provider's own words that an error repeats: enough for a
/// sentence or two, not a page.
pub const SAID_AT_MOST: usize = 300;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_matches_rfc_7636_appendix_b() {
        assert_eq!(
            challenge_for("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let (v, c) = pkce().unwrap();
        assert_eq!(v.expose().len(), 43);
        assert_eq!(challenge_for(v.expose()), c);
    }

    #[test]
    fn query_values_decode() {
        assert_eq!(
            query_value("code=a%2Bb&state=x+y", "code").as_deref(),
            Some("a+b")
        );
        assert_eq!(
            query_value("code=a&state=x+y", "state").as_deref(),
            Some("x y")
        );
        assert_eq!(form(&[("a", "b c"), ("d", "e&f")]), "a=b%20c&d=e%26f");
    }

    #[test]
    fn tokens_keep_the_old_refresh_when_none_comes_back() {
        let first = tokens_from(
            &json!({"access_token": "a1", "refresh_token": "r1", "expires_in": 60}),
            None,
        )
        .unwrap();
        let second = tokens_from(
            &json!({"access_token": "a2", "expires_in": 60}),
            Some(&first),
        )
        .unwrap();
        assert_eq!(second.refresh.expose(), "r1");
        let third = tokens_from(
            &json!({"access_token": "a3", "refresh_token": "r3"}),
            Some(&second),
        )
        .unwrap();
        assert_eq!(third.refresh.expose(), "r3");
        assert!(!format!("{third:?}").contains("a3"), "no token in Debug");
    }

    #[test]
    fn a_failed_token_answer_is_told_by_kind_not_by_words() {
        let kind = |status, v: Value| match expect_tokens(status, &v, "refresh", None) {
            Err(TokenFailure::Answered {
                status, for_good, ..
            }) => format!("{status} {}", if for_good { "for good" } else { "for now" }),
            Err(TokenFailure::NoTokens(why)) => why,
            Ok(_) => "tokens".into(),
        };
        let refused = json!({"error": "invalid_grant", "error_description": "revoked"});
        assert_eq!(kind(400, refused.clone()), "400 for good");
        assert_eq!(kind(429, refused), "429 for now");
        assert_eq!(kind(503, json!({"message": "down"})), "503 for now");
        assert_eq!(kind(403, Value::Null), "403 for now", "a web page");
        assert_eq!(
            kind(200, json!({})),
            "the token endpoint answered without an access token"
        );
        let said = expect_tokens(503, &json!({"message": "down"}), "refresh", None);
        assert_eq!(said.unwrap_err().words(), "refresh failed (503: down)");
    }

    #[test]
    fn account_id_comes_from_the_id_token() {
        let payload = base64::encode(
            br#"{"https://api.openai.com/auth":{"chatgpt_account_id":"acct_1"},"exp":99}"#,
        );
        let jwt = format!("h.{payload}.s");
        let t = tokens_from(
            &json!({"access_token": jwt, "refresh_token": "r", "id_token": jwt}),
            None,
        )
        .unwrap();
        assert_eq!(t.account_id.as_deref(), Some("acct_1"));
        assert_eq!(t.expires_at, 99);
    }
}
