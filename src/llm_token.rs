//! The token a session's machine shows the gateway instead of a provider key:
//! `cst_<session id>.<hex HMAC-SHA256(key, "llm\0" ‖ session id)>` under the deployment's
//! gateway key (`CATTY_GATEWAY_KEY`, held by the API, which mints, and the gateway, which
//! checks). The MAC proves which session; whether that session is still live is the gateway's
//! check against the sessions table, so a stopped session's token dies with it. Session ids
//! are random and never reused, so no generation is needed: nothing rotates a live session's
//! token, and an ended session's token can never come back to life.

use ring::hmac;

/// What every token starts with, so one found in a log or a paste is recognisable.
const PREFIX: &str = "cst_";

/// The shortest gateway key taken: 32 bytes, as the connect key.
pub const MIN_KEY_LEN: usize = 32;

/// The deployment's key the tokens are made and checked with.
#[derive(Clone)]
pub struct LlmKey(hmac::Key);

impl std::fmt::Debug for LlmKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LlmKey(…)")
    }
}

impl LlmKey {
    pub fn new(secret: &[u8]) -> LlmKey {
        LlmKey(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// Session `id`'s token.
    pub fn mint(&self, id: &str) -> String {
        let tag = hmac::sign(&self.0, &message(id));
        format!("{PREFIX}{id}.{}", crate::hex::encode(tag.as_ref()))
    }

    /// The session id `token` was made for, when this key made it (compared in constant time).
    pub fn verify<'t>(&self, token: &'t str) -> Option<&'t str> {
        let (id, tag) = token.strip_prefix(PREFIX)?.rsplit_once('.')?;
        let tag: [u8; 32] = crate::hex::decode(tag)?;
        hmac::verify(&self.0, &message(id), &tag).ok()?;
        Some(id)
    }
}

fn message(id: &str) -> Vec<u8> {
    [b"llm\0".as_slice(), id.as_bytes()].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_token_names_its_session_under_its_key_only() {
        let key = LlmKey::new(KEY);
        let token = key.mint("s-0011223344556677");
        assert!(token.starts_with("cst_s-0011223344556677."));
        assert_eq!(key.verify(&token), Some("s-0011223344556677"));
        // Another key, another session's name, a changed tag, truncation: all refused.
        assert_eq!(
            LlmKey::new(b"another key of thirty-two bytes!").verify(&token),
            None
        );
        let swapped = token.replace("s-0011223344556677", "s-0011223344556678");
        assert_eq!(key.verify(&swapped), None);
        let mut flipped = token.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        assert_eq!(key.verify(std::str::from_utf8(&flipped).unwrap()), None);
        assert_eq!(key.verify(&token[..token.len() - 2]), None);
        assert_eq!(key.verify(""), None);
        assert_eq!(key.verify("cst_."), None);
        assert_eq!(key.verify(&token.replacen("cst_", "cat_", 1)), None);
    }

    #[test]
    fn the_key_never_shows_in_debug() {
        assert_eq!(format!("{:?}", LlmKey::new(KEY)), "LlmKey(…)");
    }
}
