//! Input the runtime has not acknowledged yet, numbered from 0 for the life of the client id,
//! so that after a reconnect exactly the unapplied bytes are sent again. Pure logic.

#[derive(Default)]
pub(super) struct Unacked {
    /// Offset of `bytes[0]` in this client's input stream.
    base: u64,
    bytes: Vec<u8>,
}

impl Unacked {
    pub(super) fn push(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    /// The runtime has applied every byte before `applied`.
    pub(super) fn ack(&mut self, applied: u64) {
        let drop = applied
            .saturating_sub(self.base)
            .min(self.bytes.len() as u64);
        self.bytes.drain(..drop as usize);
        self.base += drop;
    }

    /// After a reconnect whose `ready` says `applied`: the bytes to send again.
    pub(super) fn resend_from(&mut self, applied: u64) -> Vec<u8> {
        self.ack(applied);
        self.bytes.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resends_only_what_was_not_applied() {
        let mut u = Unacked::default();
        u.push(b"hello ");
        u.push(b"world");
        assert_eq!(u.resend_from(0), b"hello world");
        u.ack(6);
        assert_eq!(u.resend_from(6), b"world");
        assert_eq!(u.resend_from(8), b"rld");
        u.push(b"!");
        assert_eq!(u.resend_from(11), b"!");
        assert_eq!(u.resend_from(12), b"");
    }

    #[test]
    fn stale_or_excessive_acks_are_harmless() {
        let mut u = Unacked::default();
        u.push(b"abc");
        u.ack(2);
        u.ack(1);
        assert_eq!(u.resend_from(0), b"c");
        u.ack(99);
        assert_eq!(u.resend_from(0), b"");
    }
}
