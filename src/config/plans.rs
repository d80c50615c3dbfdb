//! Each plan's monthly budget, in list-price micro-dollars (`gateway/prices.rs`), read by
//! both hosted modes: the gateway holds requests against it, the API shows it
//! (`catty usage`). The paid plan's budget is large but finite (fair use), never unlimited.

use super::{Env, UsageError};

/// The free plan's monthly allowance, in dollars, unless `CATTY_FREE_MONTHLY_USD` says.
const DEFAULT_FREE_USD: &str = "5";
/// The paid plan's monthly budget, in dollars, unless `CATTY_PAID_MONTHLY_USD` says.
const DEFAULT_PAID_USD: &str = "200";

/// What each plan may spend in a calendar month (UTC), in micro-dollars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowances {
    /// `CATTY_FREE_MONTHLY_USD` (default 5).
    pub free_micro_usd: i64,
    /// `CATTY_PAID_MONTHLY_USD` (default 200).
    pub paid_micro_usd: i64,
}

impl Allowances {
    pub fn new(env: &Env) -> Result<Allowances, UsageError> {
        let read = |name: &str, default: &str| {
            let text = env.non_empty(name).unwrap_or_else(|| default.into());
            micro_usd(&text).ok_or_else(|| {
                UsageError(format!(
                    "{name} must be an amount of dollars such as 5 or 12.50, got {text:?}"
                ))
            })
        };
        Ok(Allowances {
            free_micro_usd: read("CATTY_FREE_MONTHLY_USD", DEFAULT_FREE_USD)?,
            paid_micro_usd: read("CATTY_PAID_MONTHLY_USD", DEFAULT_PAID_USD)?,
        })
    }
}

/// `12.5` (dollars, at most six decimals, not negative) as micro-dollars: `12_500_000`.
fn micro_usd(text: &str) -> Option<i64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || fraction.len() > 6 {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let fraction: i64 = format!("{fraction:0<6}").parse().ok()?;
    whole.checked_mul(1_000_000)?.checked_add(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_and_two_hundred_dollars_unless_told() {
        let plans = Allowances::new(&Env::default()).unwrap();
        assert_eq!(plans.free_micro_usd, 5_000_000);
        assert_eq!(plans.paid_micro_usd, 200_000_000);
        let env = Env::from_pairs(&[
            ("CATTY_FREE_MONTHLY_USD", "0.25"),
            ("CATTY_PAID_MONTHLY_USD", "1000"),
        ]);
        let told = Allowances::new(&env).unwrap();
        assert_eq!(
            (told.free_micro_usd, told.paid_micro_usd),
            (250_000, 1_000_000_000)
        );
    }

    #[test]
    fn an_amount_that_is_not_dollars_is_refused() {
        for bad in [
            "-5",
            "five",
            "1.2345678",
            ".5",
            "5$",
            "1e3",
            "99999999999999999",
        ] {
            let env = Env::from_pairs(&[("CATTY_FREE_MONTHLY_USD", bad)]);
            let err = Allowances::new(&env).unwrap_err();
            assert!(err.0.contains("CATTY_FREE_MONTHLY_USD"), "{bad}: {}", err.0);
        }
        assert_eq!(micro_usd("0"), Some(0));
        assert_eq!(micro_usd("1.000001"), Some(1_000_001));
    }
}
