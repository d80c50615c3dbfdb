//! Progress while the user waits, on stderr: a spinner naming the stage, with a count where
//! there is one and the time elapsed, or a bar counting bytes. One at a time, hidden when
//! stderr is not a terminal, cleared (not left as a line) when its stage ends. Every stage
//! ends before the attach makes the terminal raw; `say!` lines put the one on show aside.

use std::borrow::Cow;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// How often a spinner turns (and its elapsed time moves on) without news.
const SPIN_INTERVAL: Duration = Duration::from_millis(120);

/// The bar or spinner on show, if any: lines are written around it, and a second stage
/// started meanwhile stays hidden.
static SHOWN: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// A stage the user waits through; dropping it clears its line.
pub(super) struct Stage {
    bar: ProgressBar,
    /// Whether this is the one on show.
    shown: bool,
}

impl Stage {
    /// A spinner for `name` while stderr is a terminal.
    pub(super) fn spinner(name: impl Into<Cow<'static, str>>) -> Stage {
        Stage::spinner_if(name, None, std::io::stderr().is_terminal())
    }

    /// A spinner for `name` that counts `unit`s (`inc`), while stderr is a terminal.
    pub(super) fn counting(name: &'static str, unit: &'static str) -> Stage {
        Stage::spinner_if(name, Some(unit), std::io::stderr().is_terminal())
    }

    /// A spinner for `name` (counting `unit`s if given) when `show`, else nothing on screen.
    pub(super) fn spinner_if(
        name: impl Into<Cow<'static, str>>,
        unit: Option<&'static str>,
        show: bool,
    ) -> Stage {
        let name = name.into();
        let text = move |state: &ProgressState, w: &mut dyn std::fmt::Write| {
            let count = unit.map(|unit| (state.pos(), unit));
            let _ = w.write_str(&stage_text(&name, count, state.elapsed()));
        };
        let style = ProgressStyle::with_template("{spinner} {stage}")
            .expect("a valid template")
            .with_key("stage", text);
        let stage = Stage::show(ProgressBar::no_length().with_style(style), show);
        stage.bar.enable_steady_tick(SPIN_INTERVAL);
        // Drawn now, not when the ticker's thread first runs: a short stage is seen too.
        stage.bar.tick();
        stage
    }

    /// A bar headed `label` counting `total_bytes` (size, rate, time left) when `show`.
    pub(super) fn bytes_if(label: &str, total_bytes: u64, show: bool) -> Stage {
        let template = format!(
            "{label} [{{bar:30}}] {{binary_bytes}}/{{binary_total_bytes}} \
             {{binary_bytes_per_sec}}, eta {{eta}}"
        );
        let style = ProgressStyle::with_template(&template).expect("a valid template");
        let bar = ProgressBar::new(total_bytes).with_style(style.progress_chars("=> "));
        Stage::show(bar, show)
    }

    /// Puts `bar` on stderr when `show` and nothing else is on show; hidden otherwise.
    fn show(bar: ProgressBar, show: bool) -> Stage {
        let mut on_show = crate::locks::lock(&SHOWN);
        let shown = show && on_show.is_none();
        match shown {
            true => {
                bar.set_draw_target(ProgressDrawTarget::stderr());
                *on_show = Some(bar.clone());
            }
            false => bar.set_draw_target(ProgressDrawTarget::hidden()),
        }
        Stage { bar, shown }
    }

    /// `n` more of what the stage counts.
    pub(super) fn inc(&self, n: u64) {
        self.bar.inc(n);
    }

    /// The bar itself, for a body that counts what it sends.
    pub(super) fn bar(&self) -> &ProgressBar {
        &self.bar
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
        if self.shown {
            *crate::locks::lock(&SHOWN) = None;
        }
    }
}

/// Runs `write` with the stage on show (if any) taken off the screen, then draws it again.
pub(super) fn suspend<R>(write: impl FnOnce() -> R) -> R {
    let shown = crate::locks::lock(&SHOWN).clone();
    match shown {
        Some(bar) => bar.suspend(write),
        None => write(),
    }
}

/// What a spinner says after its mark: `scanning the directory: 1234 files (3s)`.
fn stage_text(name: &str, count: Option<(u64, &str)>, elapsed: Duration) -> String {
    let count = match count {
        Some((n, unit)) => format!(": {n} {unit}"),
        None => String::new(),
    };
    format!("{name}{count} ({})", human_elapsed(elapsed))
}

/// `7s`, `2m05s`, `1h02m`: whole seconds, the unit of a person waiting.
fn human_elapsed(elapsed: Duration) -> String {
    let secs = elapsed.as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_says_its_name_count_and_time() {
        let s = Duration::from_secs;
        assert_eq!(
            stage_text("scanning the directory", Some((1234, "files")), s(3)),
            "scanning the directory: 1234 files (3s)"
        );
        assert_eq!(
            stage_text("creating and starting the machine", None, s(125)),
            "creating and starting the machine (2m05s)"
        );
        assert_eq!(human_elapsed(s(3725)), "1h02m");
        assert_eq!(human_elapsed(Duration::from_millis(999)), "0s");
    }

    #[test]
    fn a_hidden_stage_leaves_room_for_one_on_show() {
        let hidden = Stage::spinner_if("quiet", None, false);
        assert!(hidden.bar.is_hidden() && !hidden.shown);
        drop(hidden);
        assert!(crate::locks::lock(&SHOWN).is_none());
    }
}
