//! What may be printed of a secret, a URL or words from outside: `***`, or one safe line.
//!
//! A credential lives in [`Secret`], whose `Debug` and `Display` print `***`; a URL is
//! shown through [`shown_url`], a provider's words through [`printable`], and where a
//! source listens through [`host_of`]. Used by the log lines and by every message.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// A credential: an API key, an access or refresh token, a client key.
///
/// Kept as `Bearer KEY`, shared: a request's `authorization` header is then the secret
/// itself, not a copy made per request.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

/// What [`Secret::bearer`] puts before the credential.
const BEARER: &str = "Bearer ";

impl Secret {
    /// Wraps a credential.
    pub fn new(s: impl Into<String>) -> Secret {
        let s = s.into();
        let mut bearer = String::with_capacity(BEARER.len() + s.len());
        bearer.push_str(BEARER);
        bearer.push_str(&s);
        Secret(bearer.into())
    }

    /// The credential itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0[BEARER.len()..]
    }

    /// The credential as an `authorization` value (`Bearer KEY`), for the one place
    /// that sends it.
    pub fn bearer(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A URL as it may be shown (listings, errors, logs): the password of a
/// `user:password@` in it becomes `***`, and so does a user name alone (`TOKEN@`),
/// since that is how a token is often written into a URL; so does each value of its
/// query string (`?key=***`), where some gateways take their key.
pub fn shown_url(url: &str) -> Cow<'_, str> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Cow::Borrowed(url);
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let (user, after_user) = match authority.rfind('@') {
        Some(at) => {
            let user = match authority[..at].split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None => "***".to_string(),
            };
            (Some(user), &rest[at..])
        }
        None => (None, rest),
    };
    let mut shown = format!("{scheme}://{}", user.unwrap_or_default());
    // A `?` inside the fragment starts no query.
    let query_at = (after_user.find('?')).filter(|&q| after_user.find('#').is_none_or(|h| q < h));
    match query_at.map(|q| (&after_user[..q], &after_user[q + 1..])) {
        Some((path, query_on)) => {
            let (query, fragment) = match query_on.find('#') {
                Some(h) => query_on.split_at(h),
                None => (query_on, ""),
            };
            shown.push_str(path);
            shown.push('?');
            shown.push_str(&masked_query(query));
            shown.push_str(fragment);
        }
        None => shown.push_str(after_user),
    }
    if shown == url {
        Cow::Borrowed(url)
    } else {
        Cow::Owned(shown)
    }
}

/// A query string with each value as `***` (`key=***&v=***`), and a part without `=`
/// (`?TOKEN`) as `***` whole: any of them may be a key.
fn masked_query(query: &str) -> String {
    query
        .split('&')
        .map(|part| match part.split_once('=') {
            Some((name, "")) => format!("{name}="),
            Some((name, _)) => format!("{name}=***"),
            None if part.is_empty() => String::new(),
            None => "***".to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Words from outside (a provider's error) as they may be printed: on one line, with
/// each control character escaped (`\n`, `\u{1b}`: an escape sequence could clear
/// the screen or forge a line), and at most `max` characters, then `…`.
pub fn printable(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for (n, c) in text.chars().enumerate() {
        if n == max {
            out.push('…');
            break;
        }
        if unprintable(c) {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// True for a character that must not reach a terminal or a log as it is: a control
/// character (an escape sequence, a line end), or a bidirectional control (embeddings,
/// overrides, isolates, the marks), which makes a line read other than it is.
pub fn unprintable(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `127.0.0.1:8080` from `http://127.0.0.1:8080/v1`: where a source listens, for
/// messages.
pub fn host_of(api_base: &str) -> &str {
    // Byte searches: a `str` pattern builds a searcher per call, about a thousand
    // instructions here (callgrind), and requests ask for their source's host.
    let bytes = api_base.as_bytes();
    let rest = memchr::memmem::find(bytes, b"://").map_or(api_base, |at| &api_base[at + 3..]);
    let end = memchr::memchr3(b'/', b'?', b'#', rest.as_bytes()).unwrap_or(rest.len());
    let authority = &rest[..end];
    // Without a `user:password@`: that is no part of where it listens.
    memchr::memrchr(b'@', authority.as_bytes()).map_or(authority, |at| &authority[at + 1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_from_outside_print_on_one_line_escaped_and_short() {
        assert_eq!(printable("plain words", 20), "plain words");
        assert_eq!(
            printable("\u{1b}[31mred\r\nnext\u{202e}", 40),
            "\\u{1b}[31mred\\r\\nnext\\u{202e}"
        );
        assert_eq!(printable("ünïcödé stays", 40), "ünïcödé stays");
        assert_eq!(printable("abcdef", 3), "abc…");
        assert_eq!(printable("abc", 3), "abc");
    }

    #[test]
    fn hosts_read_as_people_write_them() {
        assert_eq!(host_of("http://127.0.0.1:8080/v1"), "127.0.0.1:8080");
        assert_eq!(host_of("https://api.openai.com"), "api.openai.com");
        assert_eq!(host_of("http://u:pw@127.0.0.1:8080/v1"), "127.0.0.1:8080");
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("sk-live-123");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(s.expose(), "sk-live-123");
    }

    #[test]
    fn urls_are_shown_without_their_password() {
        for (url, shown) in [
            ("http://user:sk-1@host/v1", "http://user:***@host/v1"),
            ("https://sk-1@host:8443", "https://***@host:8443"),
            ("http://u:p@ss@host/v1?a=b@c", "http://u:***@host/v1?a=***"),
            ("http://host/v1?user=a@b", "http://host/v1?user=***"),
            (
                "https://h/v1?key=sk-1&x=&sk-2#top",
                "https://h/v1?key=***&x=&***#top",
            ),
            ("https://h/v1?", "https://h/v1?"),
            ("http://127.0.0.1:11434/v1", "http://127.0.0.1:11434/v1"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(shown_url(url), shown, "{url}");
        }
    }
}
