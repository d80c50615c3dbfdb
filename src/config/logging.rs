//! Where and how much each mode logs: servers to stderr, the client only to a file.

use std::path::PathBuf;

use super::Env;

/// The `tracing` filter and, for the client, its log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logging {
    /// `CATTY_LOG` as given, else `catty=debug,info` with `CATTY_DEBUG=1`, else `info`.
    pub filter: String,
    /// `CATTY_LOG_FILE`: the client logs there and nowhere else (never into a raw terminal).
    pub file: Option<PathBuf>,
}

impl Logging {
    pub fn new(env: &Env) -> Logging {
        let filter = match (env.get("CATTY_LOG"), env.get("CATTY_DEBUG")) {
            (Some(filter), _) => filter,
            (_, Some(debug)) if debug == "1" => "catty=debug,info".to_string(),
            _ => "info".to_string(),
        };
        Logging {
            filter,
            file: env.non_empty("CATTY_LOG_FILE").map(PathBuf::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_from_catty_log_then_catty_debug() {
        let filter = |pairs: &[(&str, &str)]| Logging::new(&Env::from_pairs(pairs)).filter;
        assert_eq!(filter(&[]), "info");
        assert_eq!(filter(&[("CATTY_DEBUG", "1")]), "catty=debug,info");
        assert_eq!(
            filter(&[("CATTY_LOG", "warn"), ("CATTY_DEBUG", "1")]),
            "warn"
        );
    }

    #[test]
    fn log_file_only_when_set() {
        let file = |pairs: &[(&str, &str)]| Logging::new(&Env::from_pairs(pairs)).file;
        assert_eq!(file(&[]), None);
        assert_eq!(
            file(&[("CATTY_LOG_FILE", "/tmp/c.log")]),
            Some(PathBuf::from("/tmp/c.log"))
        );
    }
}
