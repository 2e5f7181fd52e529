//! Base64url without padding: PKCE values, JWT payloads and the opaque strings
//! Routeplane hands clients to give back; and a client's base64 made standard.

use std::borrow::Cow;

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64url without padding (RFC 4648 §5).
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Decodes base64url (padding and the standard alphabet tolerated).
pub fn decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// `s`, base64 in either alphabet, in the standard one with its padding (RFC 4648 §4),
/// which OpenAI and Anthropic take; Google takes both, and the google-genai SDK sends
/// bytes URL-safe. Not decoded: only the two letters that differ are swapped.
pub fn standard(s: &str) -> Cow<'_, str> {
    let pad = (4 - s.len() % 4) % 4;
    if pad == 0 && !s.contains(['-', '_']) {
        return Cow::Borrowed(s);
    }
    let mut out: String = s
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    // A length of 4n+1 is not base64 at all: left for the source to refuse.
    if pad < 3 {
        out.extend(std::iter::repeat_n('=', pad));
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_safe_base64_becomes_standard() {
        assert_eq!(standard("mP8_5-hHgA"), "mP8/5+hHgA==");
        assert_eq!(standard("Zm9vYg=="), "Zm9vYg==");
        assert!(matches!(standard("Zm9v"), Cow::Borrowed(_)));
    }

    #[test]
    fn round_trips() {
        for input in [&b""[..], b"f", b"fo", b"foo", b"foob", b"\xff\xfe\x00"] {
            assert_eq!(decode(&encode(input)).unwrap(), input);
        }
        assert_eq!(encode(b"foob"), "Zm9vYg");
    }
}
