//! `routeplane login anthropic`: the Claude Pro/Max paste-code flow and the request rules.
//!
//! Facts confirmed in public reference clients (badlogic/pi-mono
//! `packages/ai/src/utils/oauth/anthropic.ts`, router-for-me/CLIProxyAPI): authorize at
//! claude.ai with `code=true`, PKCE S256, the redirect page shows `CODE#STATE` for the
//! user to paste back; the token endpoint takes JSON. Requests carry `Authorization:
//! Bearer`, the `oauth-2025-04-20` beta, and a first system block with the Claude Code
//! identity line. Anthropic's terms reserve this OAuth for its own apps: `login`
//! says so before it starts. The impersonation constants live in [`Rules`] and can
//! be changed through environment variables, without a new build.

use serde_json::{Value, json};

use super::oauth::{self, Encoding, TokenFailure, Tokens};
use crate::error::Error;
use crate::log::Secret;
use crate::registry::AuthUrls;
use crate::upstream::{Client, Header, HeaderValue};

/// Default OAuth endpoints and client.
pub const AUTHORIZE_URL: &str = "https://claude.ai/oauth/authorize";
/// Token endpoint (exchange and refresh).
pub const TOKEN_URL: &str = "https://platform.claude.com/v1/oauth/token";
/// The page that shows `CODE#STATE` after consent.
pub const REDIRECT_URI: &str = "https://platform.claude.com/oauth/code/callback";
/// Claude Code's public client id.
pub const CLIENT_ID: &str = "9d1c250a-e61b-44d9-88ed-5944d1962f5e";
/// Scopes asked for.
pub const SCOPES: &str = "org:create_api_key user:profile user:inference";

/// What `login anthropic` prints before it starts.
pub const POLICY: &str = "\
note: Anthropic's terms (February 2026) reserve Claude Pro/Max OAuth for Claude Code and
Anthropic's own apps, and its servers have refused other clients. Routeplane passes
such refusals to you verbatim; check Anthropic's current terms before relying on this,
and consider a virtual model that falls over to a key-based or local source.";

/// The request rules a subscription token needs, overridable by environment variables
/// (`ROUTEPLANE_ANTHROPIC_BETA`, `ROUTEPLANE_ANTHROPIC_USER_AGENT`, `ROUTEPLANE_ANTHROPIC_IDENTITY`).
#[derive(Debug, Clone)]
pub struct Rules {
    /// `anthropic-beta` value.
    pub beta: String,
    /// `user-agent` value.
    pub user_agent: String,
    /// The first system block's text.
    pub identity: String,
}

impl Rules {
    /// The current rules.
    pub fn current() -> Rules {
        let var = |name: &str, default: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_string())
        };
        Rules {
            beta: var(
                "ROUTEPLANE_ANTHROPIC_BETA",
                "claude-code-20250219,oauth-2025-04-20",
            ),
            user_agent: var(
                "ROUTEPLANE_ANTHROPIC_USER_AGENT",
                "claude-cli/2.1.75 (external, cli)",
            ),
            identity: var(
                "ROUTEPLANE_ANTHROPIC_IDENTITY",
                "You are Claude Code, Anthropic's official CLI for Claude.",
            ),
        }
    }
}

/// A login in progress: what was sent, to check what comes back.
pub struct Pending {
    /// The URL the user opens.
    pub url: String,
    state: String,
    verifier: Secret,
}

/// Starts a login: the authorize URL with a fresh PKCE pair and state.
pub fn start(urls: &AuthUrls) -> Result<Pending, Error> {
    let (verifier, challenge) = oauth::pkce()?;
    let state = oauth::state()?;
    let query = oauth::form(&[
        ("code", "true"),
        ("client_id", urls.client_id.as_deref().unwrap_or(CLIENT_ID)),
        ("response_type", "code"),
        (
            "redirect_uri",
            urls.redirect_uri.as_deref().unwrap_or(REDIRECT_URI),
        ),
        ("scope", SCOPES),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
        ("state", &state),
    ]);
    let base = urls.authorize_url.as_deref().unwrap_or(AUTHORIZE_URL);
    Ok(Pending {
        url: format!("{base}?{query}"),
        state,
        verifier,
    })
}

/// Finishes a login with the pasted `CODE#STATE` (a full redirect URL also works).
pub fn finish(
    client: &Client,
    urls: &AuthUrls,
    pending: &Pending,
    pasted: &str,
) -> Result<Tokens, Error> {
    let pasted = pasted.trim();
    let (code, state) = if let Some((_, query)) = pasted.split_once('?') {
        (
            oauth::query_value(query, "code").unwrap_or_default(),
            oauth::query_value(query, "state"),
        )
    } else if let Some((c, s)) = pasted.split_once('#') {
        (c.to_string(), Some(s.to_string()))
    } else {
        (pasted.to_string(), None)
    };
    if code.is_empty() {
        return Err(Error::Auth(
            "nothing was pasted; paste the CODE#STATE shown after you approve".into(),
        ));
    }
    if state.as_deref() != Some(pending.state.as_str()) {
        return Err(Error::Auth(
            "the pasted state does not match this login; start `routeplane login anthropic` again"
                .into(),
        ));
    }
    let token_url = urls.token_url.as_deref().unwrap_or(TOKEN_URL);
    let (status, v) = oauth::post(
        client,
        token_url,
        "auth: token_url",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("state", &pending.state),
            (
                "redirect_uri",
                urls.redirect_uri.as_deref().unwrap_or(REDIRECT_URI),
            ),
            ("client_id", urls.client_id.as_deref().unwrap_or(CLIENT_ID)),
            ("code_verifier", pending.verifier.expose()),
        ],
        Encoding::Json,
    )?;
    Ok(oauth::expect_tokens(status, &v, "the code exchange", None)?)
}

/// Trades a refresh token for new tokens.
pub fn refresh(client: &Client, urls: &AuthUrls, old: &Tokens) -> Result<Tokens, TokenFailure> {
    let (status, v) = oauth::post(
        client,
        urls.token_url.as_deref().unwrap_or(TOKEN_URL),
        "auth: token_url",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", old.refresh.expose()),
            ("client_id", urls.client_id.as_deref().unwrap_or(CLIENT_ID)),
        ],
        Encoding::Json,
    )?;
    oauth::expect_tokens(status, &v, "refresh", Some(old))
}

/// Headers for a Messages request with a subscription token.
pub fn headers(tokens: &Tokens) -> Vec<Header> {
    let rules = Rules::current();
    vec![
        (
            "authorization".into(),
            HeaderValue::Bearer(tokens.access.clone()),
        ),
        ("anthropic-beta".into(), rules.beta.into()),
        ("user-agent".into(), rules.user_agent.into()),
        ("x-app".into(), "cli".into()),
    ]
}

/// Puts the identity line first in `system`, keeping the client's own system prompt after it.
pub fn shape_body(body: &mut Value) {
    let identity = Rules::current().identity;
    let first = json!({"type": "text", "text": identity});
    let rest: Vec<Value> = match body.get("system") {
        Some(Value::String(s)) if !s.is_empty() => vec![json!({"type": "text", "text": s})],
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter(|b| b["text"] != json!(identity))
            .cloned()
            .collect(),
        _ => Vec::new(),
    };
    let mut system = vec![first];
    system.extend(rest);
    body["system"] = Value::Array(system);
}

/// Reads Claude Code's `~/.claude/.credentials.json` (read-only import).
pub fn import(text: &str) -> Result<Tokens, Error> {
    let v: Value = serde_json::from_str(text).map_err(|e| {
        Error::Auth(format!(
            "the Claude Code credentials are not valid JSON: {e}"
        ))
    })?;
    let o = &v["claudeAiOauth"];
    let access = o["accessToken"].as_str().ok_or_else(|| {
        Error::Auth("no `claudeAiOauth.accessToken` in the Claude Code credentials".into())
    })?;
    Ok(Tokens {
        access: Secret::new(access),
        refresh: Secret::new(o["refreshToken"].as_str().unwrap_or("")),
        expires_at: o["expiresAt"].as_u64().map_or(0, |ms| ms / 1000),
        id_token: None,
        account_id: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_goes_first_and_the_clients_system_stays() {
        for (system, want_len) in [
            (json!("be brief"), 2),
            (
                json!([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]),
                3,
            ),
            (Value::Null, 1),
        ] {
            let mut body = json!({"model": "m", "messages": []});
            if !system.is_null() {
                body["system"] = system;
            }
            shape_body(&mut body);
            let s = body["system"].as_array().unwrap();
            assert_eq!(s.len(), want_len);
            assert_eq!(s[0]["text"], Rules::current().identity);
        }
        let mut twice = json!({"system": "x"});
        shape_body(&mut twice);
        shape_body(&mut twice);
        assert_eq!(
            twice["system"].as_array().unwrap().len(),
            2,
            "shaping is idempotent"
        );
    }

    #[test]
    fn authorize_url_has_pkce_state_and_code_true() {
        let p = start(&AuthUrls::default()).unwrap();
        assert!(
            p.url
                .starts_with("https://claude.ai/oauth/authorize?code=true&client_id=9d1c250a")
        );
        assert!(p.url.contains("code_challenge_method=S256"));
        assert!(p.url.contains(&format!("state={}", p.state)));
        assert!(
            !p.url.contains(p.verifier.expose()),
            "the verifier never goes through the browser"
        );
    }

    #[test]
    fn claude_code_credentials_import() {
        let t = import(r#"{"claudeAiOauth":{"accessToken":"sk-ant-oat01-x","refreshToken":"sk-ant-ort01-y","expiresAt":1700000000000,"scopes":["user:inference"]}}"#).unwrap();
        assert_eq!(t.expires_at, 1_700_000_000);
        assert_eq!(t.refresh.expose(), "sk-ant-ort01-y");
    }
}
