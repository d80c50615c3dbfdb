//! The order the contenders take turns in: a new one each round (a shuffle with a fixed
//! seed). The one driven right after another pays for what that one left behind (measured on
//! echo: up to 15 % on the p50), so each must follow each alike.

pub struct Turns {
    order: Vec<usize>,
    seed: u64,
}

impl Turns {
    /// Turns among `n` contenders.
    pub fn new(n: usize) -> Turns {
        Turns {
            order: (0..n).collect(),
            seed: 0x9e37_79b9_7f4a_7c15,
        }
    }

    /// The next round's order (a Fisher-Yates shuffle on xorshift).
    pub fn next_round(&mut self) -> &[usize] {
        for i in (1..self.order.len()).rev() {
            self.seed ^= self.seed << 13;
            self.seed ^= self.seed >> 7;
            self.seed ^= self.seed << 17;
            self.order.swap(i, (self.seed % (i as u64 + 1)) as usize);
        }
        &self.order
    }
}
