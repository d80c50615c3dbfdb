//! Figure 5, a new session to its first prompt: `catty new --no-upload -- bash` against the
//! warm daemon, `ssh -tt … bash` (key exchange, auth, a remote PTY), and bash started right
//! on our PTY; from the command started to the prompt on our terminal. Contenders take
//! turns, one start each per round.

use crate::Ctx;
use crate::report::{Goal, Row, Unit, median};

const ROUNDS: usize = 10;

pub fn run(ctx: &Ctx) -> Vec<Row> {
    let contenders = ctx.contenders();
    // One each first, so caches (and the daemons) are warm.
    for contender in &contenders {
        contender.to_prompt(&ctx.scratch);
    }
    let mut times = vec![Vec::new(); contenders.len()];
    for _ in 0..ROUNDS {
        for (contender, times) in contenders.iter().zip(&mut times) {
            times.push(contender.to_prompt(&ctx.scratch) * 1e3);
        }
    }
    let mut values = [None; 4];
    for (col, times) in times.iter().enumerate() {
        println!(
            "startup   {:<20} {:.1} ms median of {ROUNDS} ({})",
            contenders[col].name(),
            median(times),
            times
                .iter()
                .map(|t| format!("{t:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        values[col] = Some(median(times));
    }
    vec![Row::new(
        "new session to the first prompt byte (warm daemon), median of 10",
        Unit::Ms,
        values,
        Goal::Below(150.0),
    )]
}
