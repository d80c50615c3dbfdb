//! The process environment, read once by `main` and handed to each mode's configuration.

use std::collections::BTreeMap;

/// Environment variables by name. Not `Debug`: it holds every secret the process was given.
#[derive(Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// This process's environment. A variable whose name or value is not UTF-8 is left out
    /// (no setting of ours can be one).
    pub fn process() -> Env {
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        Env { vars }
    }

    /// An environment of exactly these variables (tests).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = &'a (&'a str, &'a str)>) -> Env {
        let vars = pairs
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Env { vars }
    }

    /// The variable as set, empty or not.
    pub fn get(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }

    /// The variable, trimmed, when it holds something.
    pub fn non_empty(&self, name: &str) -> Option<String> {
        let value = self.vars.get(name)?.trim();
        (!value.is_empty()).then(|| value.to_string())
    }

    /// Every variable, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}
