//! Machine sizes: the CPUs and memory a session asks for, checked against the sizes Fly.io
//! accepts (flyctl's validation, reference/fly-machines.md section 4) before any API call.

use serde::Serialize;

/// Without `--cpus`: one CPU, enough for an agent and a build.
const DEFAULT_CPUS: u32 = 1;
/// Without `--memory-mb`, per CPU: Claude Code's Node.js wants more than Fly's 256 MB default.
const DEFAULT_SHARED_MB_PER_CPU: u32 = 1024;

/// One CPU kind's rules.
struct CpuKind {
    name: &'static str,
    cpus: &'static [u32],
    step_mb: u32,
    min_mb_per_cpu: u32,
    max_mb_per_cpu: u32,
}

const SHARED: CpuKind = CpuKind {
    name: "shared",
    cpus: &[1, 2, 4, 6, 8],
    step_mb: 256,
    min_mb_per_cpu: 256,
    max_mb_per_cpu: 2048,
};

const PERFORMANCE: CpuKind = CpuKind {
    name: "performance",
    cpus: &[1, 2, 4, 6, 8, 10, 12, 14, 16, 32, 64, 128],
    step_mb: 1024,
    min_mb_per_cpu: 2048,
    max_mb_per_cpu: 8192,
};

/// `config.guest` of a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(super) struct Guest {
    pub cpu_kind: &'static str,
    pub cpus: u32,
    pub memory_mb: u32,
}

impl CpuKind {
    fn fits(&self, cpus: u32, memory_mb: u32) -> bool {
        self.cpus.contains(&cpus)
            && memory_mb.is_multiple_of(self.step_mb)
            && (self.min_mb_per_cpu * cpus..=self.max_mb_per_cpu * cpus).contains(&memory_mb)
    }

    fn rule(&self) -> String {
        let cpus: Vec<String> = self.cpus.iter().map(u32::to_string).collect();
        format!(
            "{} CPUs ({}) take {}–{} MB each, in steps of {} MB",
            self.name,
            cpus.join(", "),
            self.min_mb_per_cpu,
            self.max_mb_per_cpu,
            self.step_mb
        )
    }
}

/// The size for `cpus` and `memory_mb` (defaults filled in): shared CPUs when they fit,
/// performance CPUs when only they do (more than 8 CPUs, or more than 2 GB per CPU).
pub(super) fn choose(cpus: Option<u32>, memory_mb: Option<u32>) -> Result<Guest, String> {
    let cpus = cpus.unwrap_or(DEFAULT_CPUS);
    let memory_mb = memory_mb.unwrap_or_else(|| match SHARED.cpus.contains(&cpus) {
        true => DEFAULT_SHARED_MB_PER_CPU * cpus,
        false => PERFORMANCE.min_mb_per_cpu * cpus,
    });
    let kind = [SHARED, PERFORMANCE]
        .into_iter()
        .find(|kind| kind.fits(cpus, memory_mb))
        .ok_or_else(|| {
            format!(
                "{cpus} CPU(s) with {memory_mb} MB is not a Fly.io machine size: {}; {}",
                SHARED.rule(),
                PERFORMANCE.rule()
            )
        })?;
    Ok(Guest {
        cpu_kind: kind.name,
        cpus,
        memory_mb,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guest(kind: &'static str, cpus: u32, memory_mb: u32) -> Guest {
        Guest {
            cpu_kind: kind,
            cpus,
            memory_mb,
        }
    }

    #[test]
    fn defaults() {
        assert_eq!(choose(None, None).unwrap(), guest("shared", 1, 1024));
        assert_eq!(choose(Some(4), None).unwrap(), guest("shared", 4, 4096));
        assert_eq!(
            choose(Some(16), None).unwrap(),
            guest("performance", 16, 32768)
        );
        assert_eq!(choose(None, Some(512)).unwrap(), guest("shared", 1, 512));
    }

    #[test]
    fn the_table_of_sizes() {
        for (cpus, mb) in [(1, 256), (1, 2048), (2, 512), (8, 16384), (6, 1536)] {
            assert_eq!(
                choose(Some(cpus), Some(mb)).unwrap().cpu_kind,
                "shared",
                "{cpus} {mb}"
            );
        }
        for (cpus, mb) in [(1, 4096), (1, 8192), (2, 16384), (10, 20480), (128, 262144)] {
            let g = choose(Some(cpus), Some(mb)).unwrap();
            assert_eq!(g.cpu_kind, "performance", "{cpus} {mb}");
        }
        for (cpus, mb) in [
            (3, 1024),   // no such CPU count
            (1, 128),    // below the minimum
            (1, 1000),   // not a step of 256
            (1, 9216),   // above performance's 8 GB per CPU
            (2, 256),    // below 256 per CPU
            (10, 10240), // performance needs 2 GB per CPU
            (1, 2304),   // too much for shared, not a step of 1024 for performance
            (256, 524288),
        ] {
            let err = choose(Some(cpus), Some(mb)).unwrap_err();
            assert!(
                err.contains("shared CPUs (1, 2, 4, 6, 8) take 256–2048 MB"),
                "{err}"
            );
        }
    }

    #[test]
    fn serializes_as_the_api_field() {
        let g = serde_json::to_value(choose(Some(2), Some(2048)).unwrap()).unwrap();
        assert_eq!(
            g,
            serde_json::json!({"cpu_kind":"shared","cpus":2,"memory_mb":2048})
        );
    }
}
