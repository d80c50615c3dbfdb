//! The ID token's check (OpenID Connect Core §3.1.3.7), once per login: an RS256 signature
//! (ring) by one of the issuer's keys (its JWKS), `iss` the configured issuer, `aud` our
//! client, `exp` not past. What it gives is who the user is: `sub`, and `email` if present.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

/// Clocks differ a little: an ID token is taken up to this long after its `exp`.
const LEEWAY_SECS: u64 = 60;

/// The issuer's signing keys (RFC 7517); only RSA keys are used.
#[derive(Debug, Deserialize)]
pub(in crate::api) struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Debug, Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

/// Who logged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::api) struct Identity {
    pub subject: String,
    pub email: Option<String>,
}

/// Why an ID token is refused.
#[derive(Debug, PartialEq, Eq)]
pub(in crate::api) enum Refused {
    /// Signed by a key the JWKS lacks: fetch the keys again and retry once.
    UnknownKey,
    /// Anything else, said for the log.
    Bad(String),
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    aud: Audience,
    exp: u64,
    sub: String,
    email: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// Checks `token` against `keys`, `issuer` and `client_id` at `now` (unix seconds).
pub(in crate::api) fn verify(
    token: &str,
    keys: &Jwks,
    issuer: &str,
    client_id: &str,
    now: u64,
) -> Result<Identity, Refused> {
    let bad = |why: &str| Refused::Bad(why.to_string());
    let mut parts = token.split('.');
    let (Some(head), Some(body), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("not a JWS in compact form"));
    };
    let header: Header = part(head).ok_or_else(|| bad("the header does not parse"))?;
    if header.alg != "RS256" {
        return Err(Refused::Bad(format!("alg {} (only RS256)", header.alg)));
    }
    let key = find_key(keys, header.kid.as_deref())?;
    let signature = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| bad("the signature is not base64url"))?;
    let signed = &token[..head.len() + 1 + body.len()];
    key.verify(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        signed.as_bytes(),
        &signature,
    )
    .map_err(|_| bad("the signature does not verify"))?;
    let claims: Claims = part(body).ok_or_else(|| bad("the claims do not parse"))?;
    if claims.iss.trim_end_matches('/') != issuer {
        return Err(Refused::Bad(format!(
            "iss {:?} is not {issuer:?}",
            claims.iss
        )));
    }
    let audience_ok = match &claims.aud {
        Audience::One(aud) => aud == client_id,
        Audience::Many(auds) => auds.iter().any(|aud| aud == client_id),
    };
    if !audience_ok {
        return Err(bad("aud is not this client"));
    }
    if claims.exp + LEEWAY_SECS < now {
        return Err(bad("expired"));
    }
    if claims.sub.is_empty() {
        return Err(bad("no sub"));
    }
    Ok(Identity {
        subject: claims.sub,
        email: claims.email.filter(|e| !e.is_empty()),
    })
}

/// The RSA key `kid` names; without a `kid`, the only RSA key.
fn find_key(
    keys: &Jwks,
    kid: Option<&str>,
) -> Result<ring::signature::RsaPublicKeyComponents<Vec<u8>>, Refused> {
    let rsa: Vec<&Jwk> = keys.keys.iter().filter(|k| k.kty == "RSA").collect();
    let key = match kid {
        Some(kid) => rsa.iter().find(|k| k.kid.as_deref() == Some(kid)),
        None if rsa.len() == 1 => rsa.first(),
        None => None,
    };
    let key = key.ok_or(Refused::UnknownKey)?;
    let number = |v: &Option<String>| URL_SAFE_NO_PAD.decode(v.as_deref()?).ok();
    match (number(&key.n), number(&key.e)) {
        (Some(n), Some(e)) => Ok(ring::signature::RsaPublicKeyComponents { n, e }),
        _ => Err(Refused::Bad("the key has no usable n and e".into())),
    }
}

fn part<T: serde::de::DeserializeOwned>(encoded: &str) -> Option<T> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(encoded).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ID token oidc-provider 9.13.3 signed (tests/oidc/provider.mjs), and its JWKS.
    const TOKEN: &str = include_str!("testdata/id_token.jwt");
    const ISSUER: &str = "http://127.0.0.1:33699";
    const ISSUED_AT: u64 = 1796603407;
    const EXPIRES: u64 = 1796607007;

    fn keys() -> Jwks {
        serde_json::from_str(include_str!("testdata/jwks.json")).unwrap()
    }

    fn check(token: &str, issuer: &str, client: &str, now: u64) -> Result<Identity, Refused> {
        verify(token.trim(), &keys(), issuer, client, now)
    }

    #[test]
    fn a_good_token_gives_its_subject_and_email() {
        let who = check(TOKEN, ISSUER, "catty-cli", ISSUED_AT).unwrap();
        assert_eq!(who.subject, "alice");
        assert_eq!(who.email.as_deref(), Some("alice@example.com"));
    }

    #[test]
    fn another_issuer_audience_or_a_past_expiry_is_refused() {
        assert!(check(TOKEN, "http://127.0.0.1:1", "catty-cli", ISSUED_AT).is_err());
        assert!(check(TOKEN, ISSUER, "someone-else", ISSUED_AT).is_err());
        let late = EXPIRES + LEEWAY_SECS + 1;
        assert_eq!(
            check(TOKEN, ISSUER, "catty-cli", late),
            Err(Refused::Bad("expired".into()))
        );
    }

    #[test]
    fn a_changed_claim_breaks_the_signature() {
        let mut parts: Vec<String> = TOKEN.trim().split('.').map(String::from).collect();
        let claims = String::from_utf8(URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
        parts[1] = URL_SAFE_NO_PAD.encode(claims.replace("alice", "mallory"));
        let forged = parts.join(".");
        assert_eq!(
            check(&forged, ISSUER, "catty-cli", ISSUED_AT),
            Err(Refused::Bad("the signature does not verify".into()))
        );
    }

    #[test]
    fn alg_none_and_unknown_keys_are_refused() {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
        let body = TOKEN.split('.').nth(1).unwrap();
        let unsigned = format!("{header}.{body}.");
        assert!(matches!(
            check(&unsigned, ISSUER, "catty-cli", ISSUED_AT),
            Err(Refused::Bad(_))
        ));
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"rotated"}"#);
        let sig = TOKEN.trim().split('.').nth(2).unwrap();
        let rotated = format!("{header}.{body}.{sig}");
        assert_eq!(
            check(&rotated, ISSUER, "catty-cli", ISSUED_AT),
            Err(Refused::UnknownKey)
        );
    }
}
