//! The upgrade link a 402 carries: a URL of the hosted API that a browser opens as it is
//! (no bearer token), signed for one user under the gateway key (`CATTY_GATEWAY_KEY`, which
//! the gateway that answers the 402 and the API that opens the checkout both hold) and valid
//! for [`LINK_LIFETIME_SEC`]: `{api}/billing/upgrade?user=ID&exp=UNIX&sig=HEX`.

use ring::hmac;

/// How long a link opens a checkout: a day, for the message read the next morning.
pub const LINK_LIFETIME_SEC: u64 = 86_400;

/// The path of the API's page the link opens.
pub const UPGRADE_PATH: &str = "/billing/upgrade";

/// The link for `user`, made at `now` (Unix seconds), on the API at `public_url`.
pub fn make(gateway_key: &[u8], public_url: &str, user: &str, now: u64) -> String {
    let exp = now + LINK_LIFETIME_SEC;
    let sig = sign(gateway_key, user, exp);
    let base = public_url.trim_end_matches('/');
    format!(
        "{base}{UPGRADE_PATH}?user={}&exp={exp}&sig={sig}",
        crate::protocol::percent::encode(user)
    )
}

/// Whether `sig` is the link's for `user` and `exp`, and `exp` is still ahead of `now`.
pub fn verify(gateway_key: &[u8], user: &str, exp: u64, sig: &str, now: u64) -> bool {
    let Some(tag) = crate::hex::decode::<32>(sig) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, gateway_key);
    now < exp && hmac::verify(&key, &message(user, exp), &tag).is_ok()
}

fn sign(gateway_key: &[u8], user: &str, exp: u64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, gateway_key);
    let tag = hmac::sign(&key, &message(user, exp));
    crate::hex::encode(tag.as_ref())
}

fn message(user: &str, exp: u64) -> Vec<u8> {
    format!("upgrade\0{user}\0{exp}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn parts(link: &str) -> (String, u64, String) {
        let query = link.split_once('?').unwrap().1;
        let get = |name: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .unwrap()
                .to_string()
        };
        (get("user"), get("exp").parse().unwrap(), get("sig"))
    }

    #[test]
    fn a_link_opens_for_its_user_until_it_expires() {
        let link = make(KEY, "https://api.example/", "u-1", 1000);
        assert!(link.starts_with("https://api.example/billing/upgrade?user=u-1&exp=87400&sig="));
        let (user, exp, sig) = parts(&link);
        assert!(verify(KEY, &user, exp, &sig, 1000));
        assert!(verify(KEY, &user, exp, &sig, exp - 1));
        assert!(!verify(KEY, &user, exp, &sig, exp), "expired");
        assert!(!verify(KEY, "u-2", exp, &sig, 1000), "another user");
        assert!(!verify(KEY, &user, exp + 1, &sig, 1000), "a later expiry");
        assert!(!verify(
            b"another key, thirty-two bytes!!!",
            &user,
            exp,
            &sig,
            1000
        ));
        assert!(!verify(KEY, &user, exp, &sig[..62], 1000));
        assert!(!verify(KEY, &user, exp, "", 1000));
    }
}
