//! This binary's version as the daemon and its client compare it: the package version plus
//! a build id (the executable's size and modification time), so a rebuilt or reinstalled
//! binary of the same version counts as another one. Computed once per process.

use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

/// `0.1.0+1a2b3c4d5e6f7a8b`, or the bare package version when the executable cannot be read.
pub fn this_build() -> &'static str {
    static BUILD: OnceLock<String> = OnceLock::new();
    BUILD.get_or_init(|| {
        let pkg = env!("CARGO_PKG_VERSION");
        // `/proc/self/exe` is the file this process runs, even when a newer one has been
        // installed over its path since.
        let meta = std::fs::metadata("/proc/self/exe").or_else(|_| {
            let exe = std::env::current_exe()?;
            std::fs::metadata(exe)
        });
        match meta {
            Ok(meta) => {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                meta.len().hash(&mut h);
                meta.modified().ok().hash(&mut h);
                format!("{pkg}+{:016x}", h.finish())
            }
            Err(_) => pkg.to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_package_version_comes_first() {
        let build = super::this_build();
        assert!(
            build.starts_with(concat!(env!("CARGO_PKG_VERSION"), "+")),
            "{build}"
        );
        assert_eq!(build, super::this_build());
    }
}
