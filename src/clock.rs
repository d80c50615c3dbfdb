//! Wall-clock time as unix seconds, the unit of every timestamp catty stores or sends.

/// Seconds since the unix epoch (0 if the clock is set before it).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
