//! Reading an attempt's failure: what a send that got no answer, an upstream's error
//! answer, or a body that is not its protocol's answer stands for ([`Failure`]), and
//! which failures another endpoint may not have, from the source's own words (a context
//! window, a content filter, reasoning another account made or the model does not do, a
//! parameter it refuses, a credential it takes only from its own app), which
//! `next_step` then moves past or surfaces.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use super::refused::Param;
use super::{FailKind, Failure, Outcome, Run, fail};
use crate::protocol;
use crate::registry::Target;
use crate::upstream::{self, Abandon, BodyError, Piece, Reply, SendError, Stream};

/// Why a whole answer copied unchanged is not its protocol's, looked at without a
/// parse (every such answer passes here, the chat path's among them): each protocol's
/// answer is one JSON object, so its body opens with `{` and closes with `}`. An HTML
/// page (a captive portal's, a proxy's), an event stream, garbage or nothing does not.
pub(super) fn not_an_answer(status: u16, ct: &str, bytes: &[u8]) -> Option<String> {
    let b = bytes.trim_ascii();
    if b.starts_with(b"{") && b.ends_with(b"}") {
        return None;
    }
    Some(match b.is_empty() {
        true => format!("it answered {status} with an empty body"),
        false => said_instead(status, ct, bytes),
    })
}

/// What a source that answered with something other than its protocol's JSON sent
/// instead, said without quoting it (a page may echo the request).
pub(super) fn said_instead(status: u16, ct: &str, bytes: &[u8]) -> String {
    if let Some(said) = compressed(status, bytes) {
        return said;
    }
    // A captive portal's page, a proxy's login page: named by its title, as an error
    // status's page is, never quoted.
    if let Some(title) = web_page(ct, bytes) {
        let page = match title {
            Some(title) => format!("a web page (title: {title})"),
            None => "a web page".into(),
        };
        return format!(
            "it answered {status} with {page}, not its protocol's JSON answer: a network's \
             login page (a captive portal) or a proxy in front of the source answered"
        );
    }
    let ct = match ct.split(';').next().map(str::trim) {
        Some(ct) if !ct.is_empty() => ct,
        _ => "no content type",
    };
    let n = bytes.len();
    format!("it answered {status} with {n} bytes of `{ct}`, not its protocol's JSON answer")
}

/// A body that opens as gzip does (`1f 8b`), said as what it is: a server may compress
/// an answer to a request that names no `Accept-Encoding` (RFC 9110 takes any coding
/// as acceptable then), and Routeplane decodes none. Looked at only once a body failed
/// to be an answer, so no answer pays for it. A body whose `Content-Encoding` names a
/// coding is said by [`compressed_with`] at once, whatever its first bytes.
fn compressed(status: u16, bytes: &[u8]) -> Option<String> {
    let gzip = bytes.starts_with(&[0x1f, 0x8b]);
    gzip.then(|| format!("it {}", compressed_with(status, "gzip", bytes.len())))
}

/// `answered 200 with N bytes compressed with br (…)`: a body in a `coding` (its
/// `Content-Encoding`: gzip, deflate, br, zstd…), which Routeplane never asks for and
/// cannot read, said by its name.
pub(super) fn compressed_with(status: u16, coding: &str, bytes: usize) -> String {
    let coding = crate::log::printable(coding, 40);
    format!(
        "answered {status} with {bytes} bytes compressed with {coding} (`content-encoding`), \
         which Routeplane does not ask for or decode"
    )
}

/// The failure for a request to `target` that got no response head (or the client that
/// left, or a stop that cut it short).
pub(super) fn send_failed(
    env: &super::Env,
    target: &Target,
    e: &SendError,
    (answer, key): (Duration, &str),
    connect: Duration,
) -> Outcome {
    match e {
        SendError::Network(net, reason) if e.dropped() => {
            fail(FailKind::Dropped(*net), reason.clone())
        }
        // A built-in's own host that does not resolve: the user wrote no `api_base`
        // to check, so the hint names only the network.
        SendError::Network(net, _) if !target.provider.own_base => {
            let reason = e.clone().network_only().to_string();
            fail(FailKind::Network(*net), reason)
        }
        SendError::Network(net, reason) => fail(FailKind::Network(*net), reason.clone()),
        // Said with the deadline that ran out and the key that sets it.
        SendError::Timeout(stage) => {
            let (waited, key) = match *stage {
                upstream::CONNECTING => (connect, "`timeouts.connect_secs`"),
                _ => (answer, key),
            };
            let waited = crate::error::seconds(waited.as_secs_f64());
            fail(FailKind::Timeout, format!("{e} ({waited}, {key})"))
        }
        SendError::Abandoned => super::given_up(env),
    }
}

/// Reads an upstream error answer (to a request for `target` sent to `url`) and
/// classifies it.
pub(super) fn upstream_error(
    run: &Run<'_, '_>,
    target: &Target,
    mut reply: Reply,
    url: &str,
) -> Outcome {
    let status = reply.status;
    let retry_after = reply.retry_after;
    let headers = std::mem::take(&mut reply.headers);
    let ct = if reply.content_type.is_empty() {
        "application/json".into()
    } else {
        std::mem::take(&mut reply.content_type)
    };
    let coding = reply.coding.take();
    let limit = run.settings.limits.max_response_bytes.min(1024 * 1024);
    let bytes = match reply.read_all(limit, &|| super::unwanted(run.env, run.out)) {
        Ok(bytes) => bytes,
        Err(BodyError::Failed(_) | BodyError::TooLarge { .. } | BodyError::Timeout) => Vec::new(),
        Err(BodyError::Abandoned) => return super::given_up(run.env),
    };
    // A redirect is no API's answer: a network's login page (a captive portal) or a
    // server that moved. Followed, a POST would lose its body or its key would go to
    // another host; passed on, a client would get a 302 with nowhere to go.
    if (300..400).contains(&status) {
        let url = crate::log::shown_url(url);
        return fail(
            FailKind::Malformed,
            format!(
                "{url} answered {status}, a redirect, which Routeplane does not follow: a \
                 network's login page or a server that moved; check the provider's `api_base`"
            ),
        );
    }
    // Compressed, its words cannot be read: said as what it is, not as garbage.
    if let Some(coding) = coding {
        let provider = &target.provider.id;
        let said = compressed_with(status, &coding, bytes.len());
        return unreadable(
            status,
            format!("upstream `{provider}` {said}"),
            headers,
            retry_after,
        );
    }
    let page = web_page(&ct, &bytes);
    // A 404 page that is no API's JSON: nothing is served at that path, which is the
    // provider's `api_base` gone wrong (Ollama's "404 page not found" without `/v1`),
    // not a model the source lacks. Said so, rather than passed on as its bare words.
    // For a legacy completion, the path is right for chat: the source serves none.
    // So is a JSON 404 from an `api_base` with no path (OpenAI's "Invalid URL"): a
    // hosted API's `/v1` left out, not questioned at start (DeepSeek's serves at its root).
    let json = serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok();
    let legacy = target.protocol == protocol::Protocol::Completions;
    if status == 404 && (!json || (target.provider.pathless() && !legacy)) {
        let url = crate::log::shown_url(url);
        let text = match json {
            true => protocol::upstream_error_message(&bytes),
            false => String::from_utf8_lossy(&bytes).into_owned(),
        };
        let text = super::cut(text.trim(), 80);
        let said = match &page {
            Some(Some(title)) => format!("a web page titled `{title}`"),
            Some(None) => "a web page".into(),
            None if text.is_empty() => "no body".into(),
            None => format!("`{text}`"),
        };
        let why = match target.protocol {
            protocol::Protocol::Completions => {
                "the source serves no legacy completions; ask /v1/chat/completions instead"
            }
            _ => {
                "nothing is served at that path; check the provider's `api_base` (an \
                 OpenAI-style server's usually ends in `/v1`)"
            }
        };
        return fail(
            FailKind::Status(404),
            format!("{url} answered 404 ({said}): {why}"),
        );
    }
    // Ollama's 404 for a model it has not pulled ("try pulling it first") does not say
    // how: its words, then the command.
    if status == 404 && target.provider.is_ollama() {
        let said = protocol::upstream_error_message(&bytes);
        let said: String = said.chars().take(200).collect();
        // A name a letter or two from one it lists (route found it): the typo first.
        let then = if target.near.is_some() { '.' } else { ';' };
        return fail(
            FailKind::Status(404),
            format!("{said}{then} {}", target.pull_hint()),
        );
    }
    // A proxy's or a CDN's page (nginx's "502 Bad Gateway", Cloudflare's 5xx), not the
    // API's error: said as what it is, by its title, never passed on tags and all.
    if let Some(title) = page {
        let provider = &target.provider.id;
        let page = match title {
            Some(title) => format!("a web page (title: {title})"),
            None => "a web page".into(),
        };
        let reason = format!(
            "upstream `{provider}` answered {status} with {page}, not an API error: a proxy \
             or gateway in front of the source answered"
        );
        return unreadable(status, reason, headers, retry_after);
    }
    // A 401 refuses Routeplane's own credential, not the client's: passed on as the
    // source said it, a client (Claude Code) blames its own key and asks its user to
    // log in. Kept a 401, said whose key it was and where it is set.
    if status == 401 {
        let said = protocol::upstream_error_message(&bytes);
        let reason = key_refused(run.env, target, &said);
        return unreadable(status, reason, headers, retry_after);
    }
    failed_with(status, (bytes, ct), headers, retry_after)
}

/// What a 401 from `target`'s source says: that it refused Routeplane's key (or login)
/// for it, where that is set, and that the client's key to Routeplane is fine. `said`
/// is the source's words, cut here; a key they quote is masked by the caller.
pub(super) fn key_refused(env: &super::Env, target: &Target, said: &str) -> String {
    let p = &target.provider;
    let id = &p.id;
    let said = super::cut(said, 120);
    let refused = "refused the key Routeplane sends it";
    let (what, fix) = match (env.auth.logged_in(id), p.key_source.as_deref()) {
        (true, _) => (
            "refused the login Routeplane sends it",
            format!("run `routeplane login {id}`"),
        ),
        (false, Some(var)) if p.key.is_some() && var != "api_key" => {
            (refused, format!("check {var}"))
        }
        (false, _) if p.key.is_some() => (refused, format!("check `providers.{id}.api_key`")),
        (false, _) => (
            "wants a key, and Routeplane sends it none",
            format!("set `providers.{id}.api_key`"),
        ),
    };
    format!(
        "upstream `{id}` {what} (401: {said}); {fix}. The client's key to Routeplane is not \
         at fault"
    )
}

/// The failure for an error answer whose body is no API's words (a web page, a
/// compressed body): its status's, told in `reason`, with no body to pass on.
fn unreadable(
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    retry_after: Option<Duration>,
) -> Outcome {
    Outcome::Failed(Failure {
        status: Some(status),
        reason,
        kind: FailKind::Status(status),
        body: None,
        headers,
        retry_after,
    })
}

/// How much of a page is looked at for its title: its head is at its start.
const PAGE_HEAD: usize = 16 * 1024;

/// `Some` when a body that is no API's answer or error is an HTML page (its content
/// type says so and it opens with `<`, or it opens as one), with the page's title if it
/// has one; `None` otherwise: a body that does not open with `<` is not one, whatever
/// its content type claims.
fn web_page(ct: &str, bytes: &[u8]) -> Option<Option<String>> {
    let head = &bytes[..bytes.len().min(PAGE_HEAD)];
    let html = match ct.starts_with("text/html") {
        true => page_start(head).starts_with(b"<"),
        false => opens_as_page(head),
    };
    if !html {
        return None;
    }
    let lower = head.to_ascii_lowercase();
    let find =
        |what: &[u8], from: usize| memchr::memmem::find(&lower[from..], what).map(|i| from + i);
    let title = find(b"<title", 0)
        .and_then(|at| memchr::memchr(b'>', &lower[at..]).map(|gt| at + gt + 1))
        .and_then(|from| Some(&head[from..find(b"</title", from)?]))
        .map(|t| {
            let t = String::from_utf8_lossy(t);
            let t = unescaped(&t);
            let t = super::cut(&t.split_whitespace().collect::<Vec<_>>().join(" "), 80);
            // A control character left (an escape sequence, or one an entity names) is
            // written out, not sent on to a terminal or a log line.
            crate::log::printable(&t, 80)
        })
        .filter(|t| !t.is_empty());
    Some(title)
}

/// A body from its first byte that is not whitespace or a byte order mark.
fn page_start(bytes: &[u8]) -> &[u8] {
    let b = bytes.trim_ascii_start();
    b.strip_prefix(b"\xef\xbb\xbf")
        .unwrap_or(b)
        .trim_ascii_start()
}

/// True when a body opens as an HTML page does: `<!doctype` or `<html`, in any case.
fn opens_as_page(bytes: &[u8]) -> bool {
    let b = page_start(bytes);
    let opens = |tag: &[u8]| {
        b.get(..tag.len())
            .is_some_and(|o| o.eq_ignore_ascii_case(tag))
    };
    opens(b"<!doctype") || opens(b"<html")
}

/// Why a stream whose first bytes are `first` is none: a compressed body, or a web page
/// sent as `text/event-stream` (a captive portal's, or a proxy's that labels all it
/// sends so), which is read on to its title from `stream` (until `deadline`, or
/// `gone`) and said as a whole page is. Looked at once a stream, in its first bytes:
/// every event stream opens with a field or a blank line, never with `<`.
pub(super) fn not_a_stream(
    status: u16,
    first: &[u8],
    stream: &mut Stream,
    deadline: Instant,
    gone: Abandon<'_>,
) -> Option<String> {
    if let Some(said) = compressed(status, first) {
        return Some(said);
    }
    opens_as_page(first).then(|| page_of_stream(status, first, stream, (deadline, gone)))
}

/// [`not_a_stream`]'s page, read on to the end of its title or [`PAGE_HEAD`].
#[cold]
#[inline(never)]
fn page_of_stream(
    status: u16,
    first: &[u8],
    stream: &mut Stream,
    (deadline, gone): (Instant, Abandon<'_>),
) -> String {
    let mut page = first.to_vec();
    let titled = |p: &[u8]| memchr::memmem::find(&p.to_ascii_lowercase(), b"</title").is_some();
    while page.len() < PAGE_HEAD && !titled(&page) {
        match stream.next(deadline, gone) {
            Piece::Data(b) => page.extend_from_slice(&b),
            _ => break,
        }
    }
    said_instead(status, "", &page)
}

/// A title's text with the entities titles hold decoded: `&amp;`, `&lt;`, `&gt;`,
/// `&quot;`, `&apos;`, `&nbsp;` and numeric ones (`&#8211;`, `&#x2713;`). Any other is
/// left as written.
fn unescaped(text: &str) -> Cow<'_, str> {
    if !text.contains('&') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut parts = text.split('&');
    out.push_str(parts.next().unwrap_or_default());
    for part in parts {
        match entity(part) {
            Some((c, len)) => {
                out.push(c);
                out.push_str(&part[len..]);
            }
            None => {
                out.push('&');
                out.push_str(part);
            }
        }
    }
    Cow::Owned(out)
}

/// The entities [`unescaped`] decodes by name.
const ENTITIES: [(&str, char); 6] = [
    ("amp", '&'),
    ("lt", '<'),
    ("gt", '>'),
    ("quot", '"'),
    ("apos", '\''),
    ("nbsp", '\u{a0}'),
];

/// The character an entity at the start of `text` (just after its `&`) names, and its
/// length with its `;`. Looked for within 9 bytes: the longest is `#x10FFFF;`.
fn entity(text: &str) -> Option<(char, usize)> {
    let end = text.bytes().take(9).position(|b| b == b';')?;
    let name = &text[..end];
    let c = match ENTITIES.iter().find(|(n, _)| *n == name) {
        Some(&(_, c)) => c,
        None => {
            let n = name.strip_prefix('#')?;
            let (digits, radix) = match n.strip_prefix(['x', 'X']) {
                Some(hex) => (hex, 16),
                None => (n, 10),
            };
            let code = (digits.chars()).try_fold(0u32, |n, d| {
                n.checked_mul(radix)?.checked_add(d.to_digit(radix)?)
            });
            char::from_u32(code.filter(|_| !digits.is_empty())?)?
        }
    };
    Some((c, end + 1))
}

/// The failure an upstream's error answer stands for: a status and the body that said it.
pub(super) fn failed_with(
    status: u16,
    (bytes, ct): (Vec<u8>, Cow<'static, str>),
    headers: Vec<(String, String)>,
    retry_after: Option<Duration>,
) -> Outcome {
    let message = protocol::upstream_error_message(&bytes);
    let kind = match (400..500).contains(&status) {
        true => unfit(&message, &bytes).unwrap_or(FailKind::Status(status)),
        false => FailKind::Status(status),
    };
    let reason = super::cut(&message, 200);
    let retry_after = match retry_after {
        None if status == 429 => crate::upstream::reset_in_body(&bytes),
        given => given,
    };
    Outcome::Failed(Failure {
        status: Some(status),
        reason,
        kind,
        body: Some((bytes, ct)),
        headers,
        retry_after,
    })
}

/// How sources say a prompt does not fit the model's context window.
const CONTEXT_WORDS: [&str; 7] = [
    "context_length_exceeded",
    "context window",
    // llama.cpp: `exceed_context_size_error`, "the request exceeds the available context size".
    "exceed_context_size",
    "exceeds the available context size",
    "maximum context length",
    "prompt is too long",
    // Gemini: "The input token count (N) exceeds the maximum number of tokens allowed (M)."
    "exceeds the maximum number of tokens",
];

/// How sources say a model takes no reasoning, in their error's message. A value it
/// does not take ("Unsupported value: 'reasoning_effort' does not support 'minimal'")
/// is not one: that model reasons, and the client's error is returned.
const UNTHINKING_WORDS: [&str; 12] = [
    // Ollama (and its Anthropic API): `"llama3.1:8b" does not support thinking`.
    "does not support thinking",
    "does not support reasoning",
    "thinking is not supported",
    // Google, for a model without thinking or without the setting asked: "thinking_config
    // is not supported.", "Thinking level is not supported for this model.", "Thinking is
    // not enabled for models/…", and Vertex's "thinking is not configurable in this
    // model" and "Thinking_config.include_thoughts is only enabled when thinking is
    // enabled".
    "thinking_config is not supported",
    "thinking level is not supported",
    "thinking_level is not supported",
    "thinking is not enabled for",
    "thinking is not configurable",
    "only enabled when thinking is enabled",
    // OpenAI: "Unsupported parameter: 'reasoning_effort' is not supported with this
    // model." (its Responses API: 'reasoning.effort'), and its older "Unrecognized
    // request argument supplied: reasoning_effort".
    "unsupported parameter: 'reasoning_effort'",
    "unsupported parameter: 'reasoning.effort'",
    "argument supplied: reasoning_effort",
];

/// How sources say a content filter held an answer back.
const FILTER_WORDS: [&str; 3] = [
    "content_filter",
    "content filter",
    "content management policy",
];

/// The kind of an error another model might not have, from its message and body: the
/// context window ([`FailKind::Context`]), a content filter ([`FailKind::Filter`]),
/// reasoning another account encrypted ([`FailKind::Foreign`]), reasoning the model does
/// not do ([`FailKind::Unthinking`]), a parameter it refuses ([`FailKind::Unsupported`]),
/// or a credential the source takes only from its own
/// app ([`FailKind::Credential`]).
pub(super) fn unfit(message: &str, body: &[u8]) -> Option<FailKind> {
    let m = message.to_ascii_lowercase();
    let b = String::from_utf8_lossy(body).to_ascii_lowercase();
    let says = |words: &[&str]| words.iter().any(|w| m.contains(w) || b.contains(w));
    // OpenAI's code, or its words in a stream's error event: "The encrypted content
    // for item rs_… could not be verified".
    let foreign = m.contains("encrypted content") && m.contains("could not be verified")
        // An item id the source never stored: "Item with id 'msg_…' not found. Items
        // are not persisted when `store` is set to false."
        || (m.starts_with("item with id") && m.contains("not found"));
    if foreign || says(&["invalid_encrypted_content"]) {
        Some(FailKind::Foreign)
    } else if UNTHINKING_WORDS.iter().any(|w| m.contains(w))
        || (m.contains("think value") && m.contains("not supported"))
    {
        Some(FailKind::Unthinking)
    } else if let Some(p) = Param::refused_in(&m) {
        Some(FailKind::Unsupported(p))
    } else if m.contains("only authorized for use with claude code") {
        Some(FailKind::Credential)
    } else if says(&CONTEXT_WORDS) {
        Some(FailKind::Context)
    } else if says(&FILTER_WORDS) {
        Some(FailKind::Filter)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_one_json_object_looked_at_only_at_its_ends() {
        for answer in [
            &b"{}"[..],
            b" \n{\"choices\": []}\n",
            b"{not parsed, only its ends}",
        ] {
            assert_eq!(not_an_answer(200, "application/json", answer), None);
        }
        let said = |ct, body: &[u8]| not_an_answer(200, ct, body).unwrap_or_default();
        assert_eq!(
            said("application/json", b" \r\n"),
            "it answered 200 with an empty body"
        );
        assert_eq!(
            said("text/html; charset=utf-8", b"<html>log in</html>"),
            "it answered 200 with a web page, not its protocol's JSON answer: a network's \
             login page (a captive portal) or a proxy in front of the source answered"
        );
        // Named by its title, its control characters written out; never quoted.
        let portal = b"<!DOCTYPE html><head><title>\n Hotel\x1b[2J  WiFi\t</title></head>secret";
        let message = said("application/octet-stream", portal);
        assert!(
            message.starts_with(r"it answered 200 with a web page (title: Hotel\u{1b}[2J WiFi), "),
            "{message}"
        );
        assert!(!message.contains("secret"), "{message}");
        assert!(said("text/plain", b"<b>not a page</b>").contains("bytes of `text/plain`"));
        assert!(said("", b"data: {}\n\n").contains("of `no content type`"));
        assert_eq!(
            said("application/json", b"\x1f\x8b\x08\x00"),
            "it answered 200 with 4 bytes compressed with gzip (`content-encoding`), which \
             Routeplane does not ask for or decode"
        );
        assert!(said("application/json", b"{\"choices\": [").contains("13 bytes"));
    }

    #[test]
    fn a_titles_common_entities_are_decoded_and_others_left_as_written() {
        assert_eq!(
            unescaped("Sign in &amp; accept &#8211; Caf&eacute; &#X41;&#xZ;&#;&#65&lt;"),
            "Sign in & accept \u{2013} Caf&eacute; A&#xZ;&#;&#65<"
        );
        assert!(matches!(unescaped("no entity"), Cow::Borrowed(_)));
        // A page sent as an event stream is one only when it opens as a page.
        assert!(opens_as_page(b"\xef\xbb\xbf \r\n<!DOCTYPE html>"));
        assert!(opens_as_page(b"\n<HTML lang=en>"));
        assert!(!opens_as_page(b"data: <html>\n\n"));
        assert!(!opens_as_page(b"<b>"));
    }

    #[test]
    fn errors_another_endpoint_may_not_have_are_recognised() {
        let context = Some(FailKind::Context);
        assert_eq!(
            unfit("This model's maximum context length is 8192 tokens", b""),
            context
        );
        assert_eq!(
            unfit("x", br#"{"error":{"code":"context_length_exceeded"}}"#),
            context
        );
        assert_eq!(
            unfit(
                "The input token count (9) exceeds the maximum number of tokens allowed (8).",
                b""
            ),
            context
        );
        assert_eq!(
            unfit("content filter: the answer was blocked (SAFETY)", b""),
            Some(FailKind::Filter)
        );
        assert_eq!(
            unfit(
                "This credential is only authorized for use with Claude Code and cannot be \
                 used for other API requests.",
                b""
            ),
            Some(FailKind::Credential)
        );
        for refused in [
            "\"llama3.1:8b\" does not support thinking",
            "think value \"medium\" is not supported for this model",
            "Unsupported parameter: 'reasoning_effort' is not supported with this model.",
            "Unsupported parameter: 'reasoning.effort' is not supported with this model.",
        ] {
            assert_eq!(unfit(refused, b""), Some(FailKind::Unthinking), "{refused}");
        }
        assert_eq!(
            unfit(
                "Unsupported parameter: 'stop' is not supported with this model.",
                br#"{"error":{"param":"stop","code":"unsupported_parameter"}}"#
            ),
            Some(FailKind::Unsupported(Param::Stop))
        );
        for value in [
            "Unsupported value: 'reasoning_effort' does not support 'minimal' with this model.",
            "Invalid value for 'reasoning_effort': must be one of low, medium, high",
            "thinking.budget_tokens: must be less than max_tokens",
        ] {
            assert_eq!(unfit(value, b""), None, "{value}");
        }
        assert_eq!(unfit("invalid temperature", b"{}"), None);
    }
}
