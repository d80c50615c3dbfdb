//! Lines for the user that never panic: `say!` writes one to stderr, `out!` one to stdout,
//! each in a single write, and a closed stream is ignored (`catty new 2>&1 | head -1`: `new`
//! and `connect` keep SIGPIPE ignored, as they own a terminal that must be restored, so a
//! write gets `EPIPE`, where `eprintln!` would panic). A spinner on show is put aside first.

/// Writes a formatted line to stderr, ignoring a closed stream.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::client::say::line(&mut ::std::io::stderr(), ::std::format!($($arg)*))
    };
}

/// Writes a formatted line to stdout, ignoring a closed stream.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::client::say::line(&mut ::std::io::stdout(), ::std::format!($($arg)*))
    };
}

/// Writes `text` and a newline to `to` in one write; an error is ignored: nobody is there to
/// read a complaint.
pub(super) fn line(to: &mut impl std::io::Write, mut text: String) {
    text.push('\n');
    super::progress::suspend(|| {
        let _ = to.write_all(text.as_bytes()).and_then(|()| to.flush());
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_closed_stream_is_ignored() {
        let (reader, mut writer) = std::io::pipe().unwrap();
        drop(reader);
        super::line(&mut writer, "nobody reads this".into());
    }
}
