//! The table: one row per figure, a column per contender, the ratios of catty to ssh and to
//! the bare PTY, and whether catty meets the goal. Plus the statistics used.

use crate::contender::NAMES;

pub enum Unit {
    Ms,
    S,
    MBps,
    MiB,
}

/// The goal for a row, checked for each catty column.
pub enum Goal {
    None,
    /// Strictly below this, in the row's unit.
    Below(f64),
    /// At most ssh's figure (lower is better).
    AtMostSsh,
    /// At most ssh's, and at most the bare PTY's + 0.5 ms.
    EchoP50,
    /// At least ssh's and 80 % of the bare PTY's (higher is better).
    Bulk,
    /// Decided by the figure (off, on), with what it means.
    Holds(&'static str, [bool; 2]),
}

pub struct Row {
    pub figure: String,
    pub unit: Unit,
    /// In `NAMES` order; `None` where it does not apply.
    pub values: [Option<f64>; 4],
    pub goal: Goal,
}

impl Row {
    pub fn new(figure: impl Into<String>, unit: Unit, values: [Option<f64>; 4], goal: Goal) -> Row {
        Row {
            figure: figure.into(),
            unit,
            values,
            goal,
        }
    }

    fn cell(&self, col: usize) -> String {
        let Some(v) = self.values[col] else {
            return "n/a".into();
        };
        match self.unit {
            Unit::Ms if v < 1.0 => format!("{v:.3} ms"),
            Unit::Ms if v < 10.0 => format!("{v:.2} ms"),
            Unit::Ms => format!("{v:.1} ms"),
            Unit::S => format!("{v:.2} s"),
            Unit::MBps => format!("{v:.1} MB/s"),
            Unit::MiB => format!("{v:.1} MiB"),
        }
    }

    /// catty (off / on) divided by column `other`.
    fn ratio(&self, other: usize) -> String {
        let Some(base) = self.values[other].filter(|b| *b > 0.0) else {
            return "n/a".into();
        };
        let r = |c: usize| self.values[c].map_or("n/a".to_string(), |v| format!("{:.2}", v / base));
        format!("{} / {}", r(0), r(1))
    }

    fn met(&self, col: usize) -> Option<bool> {
        let v = self.values[col]?;
        let (ssh, bare) = (self.values[2], self.values[3]);
        Some(match &self.goal {
            Goal::None => return None,
            Goal::Below(limit) => v < *limit,
            Goal::AtMostSsh => v <= ssh?,
            Goal::EchoP50 => v <= ssh? && v <= bare? + 0.5,
            Goal::Bulk => v >= ssh? && v >= 0.8 * bare?,
            Goal::Holds(_, met) => met[col],
        })
    }

    fn goal_text(&self) -> String {
        let unit = match self.unit {
            Unit::Ms => "ms",
            Unit::S => "s",
            Unit::MBps => "MB/s",
            Unit::MiB => "MiB",
        };
        match &self.goal {
            Goal::None => String::new(),
            Goal::Below(limit) => format!("< {limit} {unit}"),
            Goal::AtMostSsh => "≤ ssh".into(),
            Goal::EchoP50 => "≤ ssh and ≤ bare + 0.5 ms".into(),
            Goal::Bulk => "≥ ssh and ≥ 80 % of bare".into(),
            Goal::Holds(text, _) => text.to_string(),
        }
    }

    fn goal_cell(&self) -> String {
        let word = |m: Option<bool>| match m {
            Some(true) => "yes",
            Some(false) => "no",
            None => "n/a",
        };
        let text = self.goal_text();
        if text.is_empty() {
            return "(no goal)".into();
        }
        let (off, on) = (self.met(0), self.met(1));
        if off == on {
            format!("{} ({text})", word(off))
        } else {
            format!("off {}, on {} ({text})", word(off), word(on))
        }
    }
}

/// The whole table as Markdown.
pub fn table(rows: &[Row]) -> String {
    let mut out = format!(
        "| figure | {} | {} | {} | {} | catty/ssh (off / on) | catty/bare (off / on) | goal met? |\n",
        NAMES[0], NAMES[1], NAMES[2], NAMES[3]
    );
    out.push_str("| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for row in rows {
        let cells: Vec<String> = (0..4).map(|c| row.cell(c)).collect();
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            row.figure,
            cells.join(" | "),
            row.ratio(2),
            row.ratio(3),
            row.goal_cell(),
        ));
    }
    out
}

/// The `p`th percentile (nearest rank) of `values`.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

pub fn median(values: &[f64]) -> f64 {
    percentile(values, 50.0)
}

pub fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::MIN, f64::max)
}
