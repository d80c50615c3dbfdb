//! The `Stripe-Signature` check of a webhook delivery: HMAC-SHA256 of `"<t>." + raw body`
//! under the endpoint secret, matched in constant time against every `v1` (several during a
//! secret rotation), within [`TOLERANCE`] of now. Pure: the caller passes the clock and the
//! raw bytes, before any JSON parse (reference/hosted.md §2.5).

use std::fmt;

use ring::hmac;
use subtle::{Choice, ConstantTimeEq};

/// How far the signed timestamp may be from now, either way, in seconds (stripe-go's
/// `DefaultTolerance`): a replayed delivery is refused after this.
pub(in crate::api) const TOLERANCE: u64 = 300;

/// The longest `Stripe-Signature` accepted: a few signatures take about 300 bytes.
const HEADER_MAX_BYTES: usize = 4096;

/// The most `v1` entries accepted: a rotation carries two; more is not Stripe.
const SIGNATURES_MAX: usize = 8;

/// An HMAC-SHA256 tag's length in bytes (64 hex digits).
const TAG_BYTES: usize = 32;

/// Why a delivery's signature is refused. Says what is wrong, never the secret, the expected
/// signature or the header's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::api) enum SignatureError {
    HeaderTooLong { bytes: usize },
    PieceWithoutEquals,
    BadTimestamp,
    DuplicateTimestamp,
    NoTimestamp,
    BadSignatureHex,
    TooManySignatures,
    NoSignature,
    NoMatch,
    OutsideTolerance { seconds: u64 },
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HeaderTooLong { bytes } => write!(
                f,
                "Stripe-Signature header is {bytes} bytes, more than the {HEADER_MAX_BYTES} allowed"
            ),
            Self::PieceWithoutEquals => f.write_str("a Stripe-Signature piece has no `=`"),
            Self::BadTimestamp => f.write_str("t= is not a unix time in seconds"),
            Self::DuplicateTimestamp => f.write_str("more than one t= timestamp"),
            Self::NoTimestamp => f.write_str("no t= timestamp"),
            Self::BadSignatureHex => f.write_str("a v1 signature is not 64 hex digits"),
            Self::TooManySignatures => {
                write!(f, "more than {SIGNATURES_MAX} v1 signatures")
            }
            Self::NoSignature => f.write_str("no v1 signature"),
            Self::NoMatch => f.write_str("no v1 signature matches"),
            Self::OutsideTolerance { seconds } => write!(
                f,
                "timestamp {seconds} s from now, outside the {TOLERANCE} s tolerance"
            ),
        }
    }
}

impl std::error::Error for SignatureError {}

/// Checks `header` (the raw `Stripe-Signature` value) for `payload` (the raw body) under
/// `secret` at `now` (unix seconds). Returns the signed timestamp.
pub(in crate::api) fn verify(
    payload: &[u8],
    header: &str,
    secret: &str,
    now: u64,
) -> Result<u64, SignatureError> {
    let header = Header::parse(header)?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut context = hmac::Context::with_key(&key);
    context.update(header.t_text.as_bytes());
    context.update(b".");
    context.update(payload);
    let expected = context.sign();
    // Every entry is compared, a match or not, so the time says nothing of which one matched.
    let matched = header.signatures.iter().fold(Choice::from(0), |any, sig| {
        any | sig.ct_eq(expected.as_ref())
    });
    if !bool::from(matched) {
        return Err(SignatureError::NoMatch);
    }
    // After the signature: a stale but genuine delivery is told apart from a forged one.
    let seconds = now.abs_diff(header.t);
    if seconds > TOLERANCE {
        return Err(SignatureError::OutsideTolerance { seconds });
    }
    Ok(header.t)
}

/// A `Stripe-Signature` taken apart: the timestamp as sent (it is signed as text) and the
/// decoded `v1` tags; `v0` and unknown schemes are left out.
struct Header<'a> {
    t_text: &'a str,
    t: u64,
    signatures: Vec<[u8; TAG_BYTES]>,
}

impl<'a> Header<'a> {
    fn parse(header: &'a str) -> Result<Self, SignatureError> {
        if header.len() > HEADER_MAX_BYTES {
            return Err(SignatureError::HeaderTooLong {
                bytes: header.len(),
            });
        }
        let mut timestamp = None;
        let mut signatures = Vec::new();
        for piece in header.split(',') {
            let (scheme, value) = piece
                .trim()
                .split_once('=')
                .ok_or(SignatureError::PieceWithoutEquals)?;
            match scheme {
                "t" if timestamp.is_some() => return Err(SignatureError::DuplicateTimestamp),
                "t" => timestamp = Some((value, parse_unix(value)?)),
                "v1" if signatures.len() == SIGNATURES_MAX => {
                    return Err(SignatureError::TooManySignatures);
                }
                "v1" => signatures.push(decode_tag(value)?),
                _ => {}
            }
        }
        let (t_text, t) = timestamp.ok_or(SignatureError::NoTimestamp)?;
        if signatures.is_empty() {
            return Err(SignatureError::NoSignature);
        }
        Ok(Self {
            t_text,
            t,
            signatures,
        })
    }
}

/// Digits only: `u64::from_str` would also take a `+`, which Stripe never sends.
fn parse_unix(value: &str) -> Result<u64, SignatureError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::BadTimestamp);
    }
    value.parse().map_err(|_| SignatureError::BadTimestamp)
}

fn decode_tag(value: &str) -> Result<[u8; TAG_BYTES], SignatureError> {
    crate::hex::decode(value).ok_or(SignatureError::BadSignatureHex)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SECRET: &str = "whsec_test_4eC39HqLyjWDarjtT1zdp7dc";
    const T: u64 = 1_765_000_000;
    const BODY: &[u8] = br#"{"id":"evt_1","type":"customer.subscription.updated"}"#;

    /// The expected `v1` for `body` signed at `t` under `secret`, straight from ring.
    fn sign(secret: &str, t: u64, body: &[u8]) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
        let signed = [format!("{t}.").as_bytes(), body].concat();
        let tag = hmac::sign(&key, &signed);
        crate::hex::encode(tag.as_ref())
    }

    fn header(t: u64, body: &[u8]) -> String {
        format!("t={t},v1={}", sign(SECRET, t, body))
    }

    #[test]
    fn a_valid_signature_returns_its_timestamp() {
        assert_eq!(verify(BODY, &header(T, BODY), SECRET, T), Ok(T));
    }

    #[test]
    fn a_timestamp_at_the_tolerance_passes_either_way() {
        let h = header(T, BODY);
        assert_eq!(verify(BODY, &h, SECRET, T + TOLERANCE), Ok(T));
        assert_eq!(verify(BODY, &h, SECRET, T - TOLERANCE), Ok(T));
    }

    #[test]
    fn a_timestamp_past_the_tolerance_is_refused() {
        let now = T + TOLERANCE + 1;
        assert_eq!(
            verify(BODY, &header(T, BODY), SECRET, now),
            Err(SignatureError::OutsideTolerance { seconds: 301 })
        );
    }

    #[test]
    fn a_timestamp_in_the_future_past_the_tolerance_is_refused() {
        let now = T - TOLERANCE - 100;
        assert_eq!(
            verify(BODY, &header(T, BODY), SECRET, now),
            Err(SignatureError::OutsideTolerance { seconds: 400 })
        );
    }

    #[test]
    fn any_v1_may_match_during_a_rotation() {
        let old = sign("whsec_old", T, BODY);
        let h = format!("t={T},v1={old},v1={}", sign(SECRET, T, BODY));
        assert_eq!(verify(BODY, &h, SECRET, T), Ok(T));
    }

    #[test]
    fn a_tampered_body_does_not_verify() {
        let tampered = br#"{"id":"evt_1","type":"customer.subscription.deleted"}"#;
        assert_eq!(
            verify(tampered, &header(T, BODY), SECRET, T),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn a_reserialised_body_does_not_verify() {
        let spaced = br#"{"id": "evt_1", "type": "customer.subscription.updated"}"#;
        assert_eq!(
            verify(spaced, &header(T, BODY), SECRET, T),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn a_signature_under_another_secret_does_not_verify() {
        let h = format!("t={T},v1={}", sign("whsec_other", T, BODY));
        assert_eq!(verify(BODY, &h, SECRET, T), Err(SignatureError::NoMatch));
    }

    #[test]
    fn a_signature_for_another_timestamp_does_not_verify() {
        let h = format!("t={},v1={}", T + 1, sign(SECRET, T, BODY));
        assert_eq!(verify(BODY, &h, SECRET, T), Err(SignatureError::NoMatch));
    }

    #[test]
    fn uppercase_hex_is_the_same_signature() {
        let h = format!("t={T},v1={}", sign(SECRET, T, BODY).to_uppercase());
        assert_eq!(verify(BODY, &h, SECRET, T), Ok(T));
    }

    #[test]
    fn a_header_without_t_is_refused() {
        let h = format!("v1={}", sign(SECRET, T, BODY));
        assert_eq!(
            verify(BODY, &h, SECRET, T),
            Err(SignatureError::NoTimestamp)
        );
    }

    #[test]
    fn a_header_without_v1_is_refused() {
        assert_eq!(
            verify(BODY, &format!("t={T}"), SECRET, T),
            Err(SignatureError::NoSignature)
        );
    }

    #[test]
    fn v0_alone_is_not_a_signature() {
        let h = format!("t={T},v0={}", sign(SECRET, T, BODY));
        assert_eq!(
            verify(BODY, &h, SECRET, T),
            Err(SignatureError::NoSignature)
        );
    }

    #[test]
    fn v0_and_unknown_schemes_beside_v1_are_ignored() {
        let h = format!("t={T},v0=zz,v9=whatever,v1={}", sign(SECRET, T, BODY));
        assert_eq!(verify(BODY, &h, SECRET, T), Ok(T));
    }

    #[test]
    fn a_duplicated_t_is_refused() {
        let h = format!("t={T},t={},v1={}", T + 1, sign(SECRET, T, BODY));
        assert_eq!(
            verify(BODY, &h, SECRET, T),
            Err(SignatureError::DuplicateTimestamp)
        );
    }

    #[test]
    fn a_non_numeric_t_is_refused() {
        for t in [
            "",
            "abc",
            "+1765000000",
            "-1",
            "1.5",
            "99999999999999999999999",
        ] {
            let h = format!("t={t},v1={}", sign(SECRET, T, BODY));
            assert_eq!(
                verify(BODY, &h, SECRET, T),
                Err(SignatureError::BadTimestamp)
            );
        }
    }

    #[test]
    fn bad_hex_in_v1_is_refused() {
        let good = sign(SECRET, T, BODY);
        for v1 in [&good[1..], &format!("{good}0"), &format!("g{}", &good[1..])] {
            let h = format!("t={T},v1={v1}");
            assert_eq!(
                verify(BODY, &h, SECRET, T),
                Err(SignatureError::BadSignatureHex)
            );
        }
    }

    #[test]
    fn a_garbage_header_is_refused() {
        for h in ["", "garbage", "t", ",,,", "t=1765000000,,v1=00"] {
            assert_eq!(
                verify(BODY, h, SECRET, T),
                Err(SignatureError::PieceWithoutEquals),
                "{h:?}"
            );
        }
    }

    #[test]
    fn an_oversized_header_is_refused() {
        let h = format!("{},x={}", header(T, BODY), "a".repeat(HEADER_MAX_BYTES));
        assert!(matches!(
            verify(BODY, &h, SECRET, T),
            Err(SignatureError::HeaderTooLong { .. })
        ));
    }

    #[test]
    fn more_than_eight_v1s_are_refused() {
        let v1 = sign(SECRET, T, BODY);
        let h = format!("t={T}{}", format!(",v1={v1}").repeat(SIGNATURES_MAX + 1));
        assert_eq!(
            verify(BODY, &h, SECRET, T),
            Err(SignatureError::TooManySignatures)
        );
    }

    #[test]
    fn no_error_message_names_the_secret_or_the_signature() {
        let expected = sign(SECRET, T, BODY);
        let cases = [
            verify(BODY, &"x".repeat(HEADER_MAX_BYTES + 1), SECRET, T),
            verify(BODY, "garbage", SECRET, T),
            verify(BODY, &format!("t=x,v1={expected}"), SECRET, T),
            verify(BODY, &format!("t={T},t={T},v1={expected}"), SECRET, T),
            verify(BODY, &format!("v1={expected}"), SECRET, T),
            verify(BODY, &format!("t={T},v1=zz"), SECRET, T),
            verify(
                BODY,
                &format!("t={T}{}", format!(",v1={expected}").repeat(9)),
                SECRET,
                T,
            ),
            verify(BODY, &format!("t={T}"), SECRET, T),
            verify(b"other", &header(T, BODY), SECRET, T),
            verify(BODY, &header(T, BODY), SECRET, T + 1000),
        ];
        for case in cases {
            let message = case.expect_err("every case is refused").to_string();
            assert!(!message.contains(SECRET), "{message}");
            assert!(!message.contains(&expected[..16]), "{message}");
        }
    }

    proptest! {
        #[test]
        fn any_header_is_parsed_or_refused(h in "\\PC{0,300}", now in any::<u64>()) {
            let _ = verify(BODY, &h, SECRET, now);
        }

        #[test]
        fn any_shaped_header_is_parsed_or_refused(
            pieces in prop::collection::vec("(t|v0|v1|x|)(=)?[0-9a-fA-Fg+-]{0,70}", 0..12),
            now in any::<u64>(),
        ) {
            let _ = verify(BODY, &pieces.join(","), SECRET, now);
        }

        #[test]
        fn a_changed_body_never_verifies(
            index in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let mut body = BODY.to_vec();
            let i = index.index(body.len());
            body[i] ^= flip;
            prop_assert_eq!(
                verify(&body, &header(T, BODY), SECRET, T),
                Err(SignatureError::NoMatch)
            );
        }

        #[test]
        fn a_different_body_never_verifies(
            body in prop::collection::vec(any::<u8>(), 0..200),
        ) {
            prop_assume!(body != BODY);
            prop_assert_eq!(
                verify(&body, &header(T, BODY), SECRET, T),
                Err(SignatureError::NoMatch)
            );
        }
    }
}
