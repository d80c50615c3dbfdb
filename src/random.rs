//! Randomness from the OS for ids, tokens and labels, shared by the modes.

/// `n` random bytes as lowercase hex: session ids (`s-` + 8 bytes), tokens (32 bytes), client
/// ids (16 bytes).
pub fn hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).expect("the OS has randomness");
    crate::hex::encode(&bytes)
}

/// A random `u64`.
pub fn u64() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS has randomness");
    u64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex() {
        let token = super::hex(32);
        assert_eq!(token.len(), 64);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(token, super::hex(32));
    }
}
