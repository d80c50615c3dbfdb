//! Terminal output as plain text for `catty logs`: escape sequences (CSI, OSC, DCS and the
//! other strings, two-byte escapes) and control characters other than newline and tab are
//! dropped, carriage returns included. A state machine fed chunk by chunk, so a sequence cut
//! between two chunks is still recognised.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    #[default]
    Text,
    /// After ESC.
    Escape,
    /// ESC followed by intermediates (`ESC ( B`): ends at the final byte.
    Intermediate,
    /// `ESC [` …: ends at a byte in `@`..=`~`.
    Csi,
    /// OSC, DCS, SOS, PM, APC: ends at BEL or `ESC \`.
    String,
    /// ESC inside a string.
    StringEscape,
}

/// Strips a byte stream; keeps its state between chunks.
#[derive(Debug, Default)]
pub(super) struct Stripper {
    state: State,
}

impl Stripper {
    /// Appends the text of `input` to `out`.
    pub(super) fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &b in input {
            self.state = match (self.state, b) {
                (State::Text, 0x1b) => State::Escape,
                (State::Text, b'\n' | b'\t') | (State::Text, 0x20..=0x7e | 0x80..) => {
                    out.push(b);
                    State::Text
                }
                (State::Text, _) => State::Text,
                (State::Escape, b'[') => State::Csi,
                (State::Escape, b']' | b'P' | b'X' | b'^' | b'_') => State::String,
                (State::Escape, 0x20..=0x2f) => State::Intermediate,
                (State::Escape | State::Intermediate | State::Csi, 0x1b) => State::Escape,
                (State::Intermediate, 0x20..=0x2f) => State::Intermediate,
                (State::Escape | State::Intermediate, _) => State::Text,
                (State::Csi, 0x40..=0x7e) => State::Text,
                (State::Csi, _) => State::Csi,
                (State::String, 0x07) => State::Text,
                (State::String | State::StringEscape, 0x1b) => State::StringEscape,
                (State::StringEscape, b'\\') => State::Text,
                (State::String | State::StringEscape, _) => State::String,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip(chunks: &[&[u8]]) -> String {
        let mut s = Stripper::default();
        let mut out = Vec::new();
        for chunk in chunks {
            s.feed(chunk, &mut out);
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn colours_titles_and_cursor_moves_go() {
        let input =
            b"\x1b[1;31mred\x1b[0m \x1b]0;title\x07plain\r\n\x1b(Bnext\x1b[2K\x1bPq#0\x1b\\!\r\n";
        assert_eq!(strip(&[input]), "red plain\nnext!\n");
    }

    #[test]
    fn a_sequence_cut_between_chunks_still_goes() {
        assert_eq!(
            strip(&[b"a\x1b[3", b"8;5;12", b"mb\x1b", b"]2;t\x1b", b"\\c"]),
            "abc"
        );
    }

    #[test]
    fn utf8_and_tabs_stay_controls_go() {
        assert_eq!(strip(&["é\tü\x07\x08x".as_bytes()]), "é\tüx");
    }
}
