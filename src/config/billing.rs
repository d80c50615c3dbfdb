//! The hosted API's Stripe settings (issue 18): the secret key, the webhook's signing secret,
//! the price a subscription buys, Stripe's URL (a test's fake), and the API's public URL that
//! Checkout returns to. Billing is on only when every one is set; a part of them is a usage
//! error. `Debug` shows no secret.

use super::{Env, UsageError, api_url};

/// Stripe's API unless `CATTY_STRIPE_API_URL` names another (tests: a local fake).
pub const DEFAULT_STRIPE_API_URL: &str = "https://api.stripe.com";

/// The variables billing needs, all or none.
const REQUIRED: [&str; 4] = [
    "CATTY_STRIPE_SECRET_KEY",
    "CATTY_STRIPE_WEBHOOK_SECRET",
    "CATTY_STRIPE_PRICE_ID",
    "CATTY_PUBLIC_URL",
];

/// Stripe, as the hosted API calls it and hears from it.
#[derive(Clone)]
pub struct BillingConfig {
    /// `CATTY_STRIPE_SECRET_KEY` (`sk_…` or a restricted `rk_…`).
    pub secret_key: String,
    /// `CATTY_STRIPE_WEBHOOK_SECRET` (`whsec_…`): signs each webhook delivery.
    pub webhook_secret: String,
    /// `CATTY_STRIPE_PRICE_ID` (`price_…`): the paid plan's recurring price.
    pub price_id: String,
    /// `CATTY_STRIPE_API_URL`, default [`DEFAULT_STRIPE_API_URL`]; https, or http on loopback.
    pub api_url: String,
    /// `CATTY_PUBLIC_URL`: the API as browsers reach it (Checkout's success and cancel pages,
    /// the upgrade link's host); https, or http on loopback.
    pub public_url: String,
}

impl std::fmt::Debug for BillingConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BillingConfig")
            .field("secret_key", &"<secret>")
            .field("webhook_secret", &"<secret>")
            .field("price_id", &self.price_id)
            .field("api_url", &self.api_url)
            .field("public_url", &self.public_url)
            .finish()
    }
}

impl BillingConfig {
    /// `None` when no Stripe variable is set (billing off: its routes answer 404).
    pub(super) fn new(env: &Env) -> Result<Option<BillingConfig>, UsageError> {
        let set: Vec<Option<String>> = REQUIRED.iter().map(|n| env.non_empty(n)).collect();
        if set.iter().all(Option::is_none) {
            return Ok(None);
        }
        let missing: Vec<&str> = (REQUIRED.iter().zip(&set))
            .filter(|(_, v)| v.is_none())
            .map(|(n, _)| *n)
            .collect();
        if !missing.is_empty() {
            return Err(UsageError(format!(
                "billing needs {} too (or none of {})",
                missing.join(", "),
                REQUIRED.join(", ")
            )));
        }
        let get = |name: &str| env.non_empty(name).unwrap_or_default();
        let stripe = env.non_empty("CATTY_STRIPE_API_URL");
        let stripe_url = api_url(stripe.as_deref().unwrap_or(DEFAULT_STRIPE_API_URL))
            .map_err(|e| UsageError(format!("CATTY_STRIPE_API_URL: {}", e.0)))?;
        Ok(Some(BillingConfig {
            secret_key: get(REQUIRED[0]),
            webhook_secret: get(REQUIRED[1]),
            price_id: get(REQUIRED[2]),
            api_url: stripe_url,
            public_url: api_url(&get(REQUIRED[3]))
                .map_err(|e| UsageError(format!("CATTY_PUBLIC_URL: {}", e.0)))?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [(&str, &str); 4] = [
        ("CATTY_STRIPE_SECRET_KEY", "sk_test_s3cret"),
        ("CATTY_STRIPE_WEBHOOK_SECRET", "whsec_s3cret"),
        ("CATTY_STRIPE_PRICE_ID", "price_1"),
        ("CATTY_PUBLIC_URL", "https://api.example.com/"),
    ];

    #[test]
    fn billing_is_off_without_stripe_and_refused_half_set() {
        assert!(BillingConfig::new(&Env::from_pairs(&[])).unwrap().is_none());
        let err = BillingConfig::new(&Env::from_pairs(&ALL[..2])).unwrap_err();
        assert!(err.0.contains("CATTY_STRIPE_PRICE_ID"), "{}", err.0);
        assert!(err.0.contains("CATTY_PUBLIC_URL"), "{}", err.0);
    }

    #[test]
    fn every_setting_on_and_no_secret_shown() {
        let c = BillingConfig::new(&Env::from_pairs(&ALL)).unwrap().unwrap();
        assert_eq!(c.api_url, DEFAULT_STRIPE_API_URL);
        assert_eq!(c.public_url, "https://api.example.com");
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        let mut plain = ALL.to_vec();
        plain.push(("CATTY_STRIPE_API_URL", "http://stripe.example.com"));
        assert!(BillingConfig::new(&Env::from_pairs(&plain)).is_err());
    }
}
