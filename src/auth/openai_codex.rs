//! `routeplane login openai-codex`: the ChatGPT/Codex loopback and device-code flows, and request rules.
//!
//! Facts confirmed in public reference clients (openai/codex `codex-rs/login`,
//! badlogic/pi-mono, sst/opencode): issuer `https://auth.openai.com`, the Codex CLI's
//! public client id, PKCE S256 with a loopback redirect to
//! `http://localhost:1455/auth/callback` and the extra authorize parameters
//! `id_token_add_organizations`, `codex_cli_simplified_flow`, `originator`; the code
//! exchange is form-encoded, the refresh JSON. The device flow asks
//! `/api/accounts/deviceauth/usercode`, polls `/api/accounts/deviceauth/token` (403/404
//! while pending) and exchanges the code it returns with the server-supplied verifier.
//! Requests go to the Responses backend with the account id from the id token.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::oauth::{self, Encoding, TokenFailure, Tokens};
use crate::error::Error;
use crate::log::Secret;
use crate::registry::AuthUrls;
use crate::upstream::{Client, Header, HeaderValue};

/// The OAuth issuer.
pub const ISSUER: &str = "https://auth.openai.com";
/// The Codex CLI's public client id.
pub const CLIENT_ID: &str = "app_EMoamEEZ73f0CkXaXp7hrann";
/// The loopback redirect the client id is registered for.
pub const REDIRECT_URI: &str = "http://localhost:1455/auth/callback";
/// Scopes asked for.
pub const SCOPES: &str = "openid profile email offline_access";
/// The `originator` sent with the authorize request and API calls.
pub const ORIGINATOR: &str = "codex_cli_rs";
/// How long a device code lives.
pub const DEVICE_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// The longest wait between device polls, whatever `interval` the server names: one of
/// days would outlast the code (Codex's server asks for 5 s).
const MAX_INTERVAL: Duration = Duration::from_secs(30);

fn client_id(urls: &AuthUrls) -> &str {
    urls.client_id.as_deref().unwrap_or(CLIENT_ID)
}

/// Where the device flow lives: the origin of an overridden `device_url` (so that
/// overriding it alone moves the polling, the page shown and the code exchange with
/// it), else the issuer.
fn device_origin(urls: &AuthUrls) -> &str {
    urls.device_url.as_deref().map_or(ISSUER, origin)
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

/// The token endpoint of the device flow's code exchange.
fn device_token_exchange_url(urls: &AuthUrls) -> String {
    urls.token_url
        .clone()
        .unwrap_or_else(|| format!("{}/oauth/token", device_origin(urls)))
}

fn token_url(urls: &AuthUrls) -> String {
    urls.token_url
        .clone()
        .unwrap_or_else(|| format!("{ISSUER}/oauth/token"))
}

/// A browser login in progress.
pub struct Pending {
    /// The URL the user opens.
    pub url: String,
    /// The redirect URI (the loopback listener serves it).
    pub redirect_uri: String,
    /// The state to expect back.
    pub state: String,
    verifier: Secret,
}

/// Starts a browser login.
pub fn start(urls: &AuthUrls) -> Result<Pending, Error> {
    let (verifier, challenge) = oauth::pkce()?;
    let state = oauth::state()?;
    let redirect_uri = urls
        .redirect_uri
        .clone()
        .unwrap_or_else(|| REDIRECT_URI.to_string());
    let query = oauth::form(&[
        ("response_type", "code"),
        ("client_id", client_id(urls)),
        ("redirect_uri", &redirect_uri),
        ("scope", SCOPES),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
        ("id_token_add_organizations", "true"),
        ("codex_cli_simplified_flow", "true"),
        ("state", &state),
        ("originator", ORIGINATOR),
    ]);
    let base = urls
        .authorize_url
        .clone()
        .unwrap_or_else(|| format!("{ISSUER}/oauth/authorize"));
    Ok(Pending {
        url: format!("{base}?{query}"),
        redirect_uri,
        state,
        verifier,
    })
}

/// Exchanges the code the callback received.
pub fn finish(
    client: &Client,
    urls: &AuthUrls,
    pending: &Pending,
    code: &str,
) -> Result<Tokens, Error> {
    exchange(
        client,
        urls,
        &token_url(urls),
        code,
        &pending.redirect_uri,
        pending.verifier.expose(),
    )
}

fn exchange(
    client: &Client,
    urls: &AuthUrls,
    token_url: &str,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Result<Tokens, Error> {
    let (status, v) = oauth::post(
        client,
        token_url,
        "auth: token_url",
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("client_id", client_id(urls)),
            ("code_verifier", verifier),
        ],
        Encoding::Form,
    )?;
    Ok(oauth::expect_tokens(status, &v, "the code exchange", None)?)
}

/// Trades a refresh token for new tokens (refresh tokens are single-use: store the result at once).
pub fn refresh(client: &Client, urls: &AuthUrls, old: &Tokens) -> Result<Tokens, TokenFailure> {
    let (status, v) = oauth::post(
        client,
        &token_url(urls),
        "auth: token_url",
        &[
            ("client_id", client_id(urls)),
            ("grant_type", "refresh_token"),
            ("refresh_token", old.refresh.expose()),
        ],
        Encoding::Json,
    )?;
    oauth::expect_tokens(status, &v, "refresh", Some(old))
}

/// A device code to show the user.
pub struct Device {
    /// The page to open.
    pub verify_url: String,
    /// The code to type there.
    pub user_code: String,
    /// How long the code lives: the server's `expires_in`, else [`DEVICE_LIFETIME`].
    pub lifetime: Duration,
    device_auth_id: String,
    interval: Duration,
}

/// Asks for a device code (headless login).
pub fn device_start(client: &Client, urls: &AuthUrls) -> Result<Device, Error> {
    let url = urls
        .device_url
        .clone()
        .unwrap_or_else(|| format!("{ISSUER}/api/accounts/deviceauth/usercode"));
    let (status, v) = oauth::post(
        client,
        &url,
        "auth: device_url",
        &[("client_id", client_id(urls))],
        Encoding::Json,
    )?;
    if status == 404 {
        return Err(Error::Auth("device login is not enabled for this account: turn on device code authorization in ChatGPT's security settings, or log in without --device".into()));
    }
    if !(200..300).contains(&status) {
        return Err(Error::Auth(format!(
            "could not start a device login ({})",
            oauth::error_text(status, &v)
        )));
    }
    let user_code = v["user_code"]
        .as_str()
        .or(v["usercode"].as_str())
        .unwrap_or_default()
        .to_string();
    // Printed to the terminal to be typed: an escape sequence in it would reach both.
    if user_code.is_empty() || user_code.chars().any(char::is_control) {
        return Err(Error::Auth(format!(
            "the device login sent an unusable code {user_code:?}; try again later"
        )));
    }
    // The interval arrives as a string ("5") from the Codex backend.
    let secs = |k: &str| (v[k].as_u64()).or_else(|| v[k].as_str().and_then(|s| s.parse().ok()));
    let interval = secs("interval").unwrap_or(5);
    // At most a day: a deadline of years would overflow the clock's arithmetic.
    let lifetime = secs("expires_in").filter(|s| *s > 0).map(|s| s.min(86_400));
    Ok(Device {
        verify_url: urls
            .device_verify_url
            .clone()
            .unwrap_or_else(|| format!("{}/codex/device", device_origin(urls))),
        user_code,
        lifetime: lifetime.map_or(DEVICE_LIFETIME, Duration::from_secs),
        device_auth_id: v["device_auth_id"].as_str().unwrap_or_default().to_string(),
        interval: Duration::from_secs(interval),
    })
}

/// Polls until the user approves (or the code expires after `lifetime`, as a rule
/// [`Device::lifetime`]), then exchanges the code.
pub fn device_finish(
    client: &Client,
    urls: &AuthUrls,
    device: &Device,
    min_interval: Duration,
    lifetime: Duration,
) -> Result<Tokens, Error> {
    let url = urls
        .device_token_url
        .clone()
        .unwrap_or_else(|| format!("{}/api/accounts/deviceauth/token", device_origin(urls)));
    let deadline = Instant::now() + lifetime;
    let mut interval = device.interval.max(min_interval).min(MAX_INTERVAL);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Auth(
                "the device code expired before it was approved; run the login again".into(),
            ));
        }
        std::thread::sleep(interval.min(MAX_INTERVAL).min(left));
        let (status, v) = oauth::post(
            client,
            &url,
            "auth: device_token_url",
            &[
                ("device_auth_id", &device.device_auth_id),
                ("user_code", &device.user_code),
            ],
            Encoding::Json,
        )?;
        match status {
            200..=299 => {
                let code = v["authorization_code"].as_str().unwrap_or_default();
                let verifier = v["code_verifier"].as_str().unwrap_or_default();
                let token_url = device_token_exchange_url(urls);
                let redirect = format!(
                    "{}/deviceauth/callback",
                    token_url
                        .strip_suffix("/oauth/token")
                        .unwrap_or(device_origin(urls))
                );
                return exchange(client, urls, &token_url, code, &redirect, verifier);
            }
            // Still waiting for the user.
            403 | 404 => {}
            429 => interval += Duration::from_secs(5).min(interval.max(min_interval)),
            _ => {
                let text = oauth::error_text(status, &v);
                if text.contains("slow_down") {
                    interval += Duration::from_secs(5).min(interval.max(min_interval));
                    continue;
                }
                if text.contains("pending") {
                    continue;
                }
                return Err(Error::Auth(format!("the device login failed ({text})")));
            }
        }
    }
}

/// Headers for a Codex backend request.
pub fn headers(tokens: &Tokens) -> Vec<Header> {
    let mut h: Vec<Header> = vec![
        (
            "authorization".into(),
            HeaderValue::Bearer(tokens.access.clone()),
        ),
        ("openai-beta".into(), "responses=experimental".into()),
        ("originator".into(), ORIGINATOR.into()),
    ];
    if let Some(id) = &tokens.account_id {
        h.push(("chatgpt-account-id".into(), id.clone().into()));
    }
    h
}

/// Reads the Codex CLI's `$CODEX_HOME/auth.json` (read-only import).
pub fn import(text: &str) -> Result<Tokens, Error> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| Error::Auth(format!("the Codex auth file is not valid JSON: {e}")))?;
    let t = &v["tokens"];
    let mut tokens = oauth::tokens_from(t, None).map_err(|_| Error::Auth("the Codex auth file has no ChatGPT tokens (`tokens.access_token`, `tokens.refresh_token`)".into()))?;
    if tokens.account_id.is_none() {
        tokens.account_id = t["account_id"].as_str().map(str::to_string);
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorize_url_carries_the_codex_parameters() {
        let p = start(&AuthUrls::default()).unwrap();
        for part in [
            "https://auth.openai.com/oauth/authorize?response_type=code",
            "client_id=app_EMoamEEZ73f0CkXaXp7hrann",
            "redirect_uri=http%3A%2F%2Flocalhost%3A1455%2Fauth%2Fcallback",
            "codex_cli_simplified_flow=true",
            "originator=codex_cli_rs",
            "code_challenge_method=S256",
        ] {
            assert!(p.url.contains(part), "{part} in {}", p.url);
        }
    }

    #[test]
    fn device_urls_follow_an_overridden_device_url() {
        let urls = AuthUrls {
            device_url: Some("http://127.0.0.1:9/api/accounts/deviceauth/usercode".into()),
            ..AuthUrls::default()
        };
        assert_eq!(device_origin(&urls), "http://127.0.0.1:9");
        assert_eq!(
            device_token_exchange_url(&urls),
            "http://127.0.0.1:9/oauth/token"
        );
        assert_eq!(device_origin(&AuthUrls::default()), ISSUER);
        assert_eq!(origin("https://h"), "https://h");
    }

    #[test]
    fn codex_cli_file_imports() {
        let payload = crate::base64::encode(
            br#"{"https://api.openai.com/auth":{"chatgpt_account_id":"acct_9"}}"#,
        );
        let jwt = format!("h.{payload}.s");
        let text = format!(
            r#"{{"auth_mode":"chatgpt","OPENAI_API_KEY":null,"tokens":{{"id_token":"{jwt}","access_token":"{jwt}","refresh_token":"rt","account_id":"acct_9"}},"last_refresh":"2026-01-01T00:00:00Z"}}"#
        );
        let t = import(&text).unwrap();
        assert_eq!(t.account_id.as_deref(), Some("acct_9"));
        assert_eq!(
            headers(&t).last().unwrap(),
            &("chatgpt-account-id".into(), "acct_9".into())
        );
    }
}
