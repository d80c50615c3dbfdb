//! A terminal emulator of the session's screen, so a fresh attach gets a redraw instead of a
//! replay of old bytes. It parses lazily: only when a redraw is asked for does it catch up with
//! the output buffer, so bulk output costs nothing on the hot path.

use std::collections::VecDeque;
use std::num::NonZeroU16;

use super::buffer::OutputBuffer;

/// Bytes parsed per step while catching up (keeps each copy out of the ring small).
const CATCH_UP_CHUNK_BYTES: usize = 64 * 1024;

pub(super) struct Screen {
    parser: vt100::Parser,
    /// Output offset up to which `parser` has seen the stream.
    parsed: u64,
    /// Resizes not yet applied, with the output offset at which they happened.
    resizes: VecDeque<(u64, (u16, u16))>,
    /// The size in effect at `parsed`.
    size: (u16, u16),
}

impl Screen {
    pub(super) fn new(size: (u16, u16)) -> Self {
        Screen {
            parser: parser(size),
            parsed: 0,
            resizes: VecDeque::new(),
            size,
        }
    }

    /// Records that the PTY became `size` when the output stream was at `offset`.
    pub(super) fn resize(&mut self, offset: u64, size: (u16, u16)) {
        self.resizes.push_back((offset, size));
    }

    /// Escape codes that paint the current screen on a blank terminal of the same size.
    pub(super) fn render(&mut self, buffer: &OutputBuffer) -> Vec<u8> {
        self.catch_up(buffer);
        let screen = self.parser.screen();
        let mut out = String::from("\x1b[0m");
        if screen.alternate_screen() {
            out.push_str("\x1b[?1049h");
        }
        out.push_str(&screen.state_formatted());
        out.into_bytes()
    }

    fn catch_up(&mut self, buffer: &OutputBuffer) {
        if self.parsed < buffer.start() {
            // The bytes in between are gone: start over from the oldest byte kept. Programs
            // that draw a screen redraw it often, so this converges on the right picture.
            self.apply_resizes_until(buffer.start());
            self.parser = parser(self.size);
            self.parsed = buffer.start();
        }
        let mut chunk = Vec::with_capacity(CATCH_UP_CHUNK_BYTES);
        while self.parsed < buffer.end() {
            let limit = match self.resizes.front() {
                Some(&(at, _)) if at <= self.parsed => {
                    self.apply_resizes_until(self.parsed);
                    continue;
                }
                Some(&(at, _)) => (at - self.parsed) as usize,
                None => usize::MAX,
            };
            chunk.clear();
            let n = buffer.copy_from(self.parsed, CATCH_UP_CHUNK_BYTES.min(limit), &mut chunk);
            self.parser.process(&chunk);
            self.parsed += n as u64;
        }
        self.apply_resizes_until(self.parsed);
    }

    fn apply_resizes_until(&mut self, offset: u64) {
        while let Some(&(at, size)) = self.resizes.front() {
            if at > offset {
                break;
            }
            self.resizes.pop_front();
            self.size = size;
            let (rows, cols) = nonzero(size);
            self.parser.screen_mut().set_size(rows, cols);
        }
    }
}

fn nonzero((cols, rows): (u16, u16)) -> (NonZeroU16, NonZeroU16) {
    let one = NonZeroU16::MIN;
    (
        NonZeroU16::new(rows).unwrap_or(one),
        NonZeroU16::new(cols).unwrap_or(one),
    )
}

fn parser(size: (u16, u16)) -> vt100::Parser {
    let (rows, cols) = nonzero(size);
    vt100::Parser::new(rows, cols, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(screen: &mut Screen, buffer: &OutputBuffer) -> String {
        screen.render(buffer);
        screen.parser.screen().contents()
    }

    #[test]
    fn renders_what_was_written() {
        let mut buffer = OutputBuffer::new(1024);
        let mut screen = Screen::new((20, 3));
        buffer.push(b"hello\r\n\x1b[31mred\x1b[0m");
        let painted = screen.render(&buffer);
        let painted = String::from_utf8(painted).unwrap();
        assert!(painted.contains("hello"), "{painted:?}");
        assert!(painted.contains("red"));
        assert_eq!(screen.parser.screen().cursor_position(), (1, 3));
    }

    #[test]
    fn applies_resizes_at_their_offsets() {
        let mut buffer = OutputBuffer::new(1024);
        let mut screen = Screen::new((10, 2));
        buffer.push(b"a");
        // Two rows would scroll "a" away below; five keep it, so only a resize applied at
        // this offset (before the newlines) keeps it on the screen.
        screen.resize(buffer.end(), (10, 5));
        buffer.push(b"\r\n\r\n\r\nz");
        assert_eq!(contents(&mut screen, &buffer), "a\n\n\nz");
        let five = NonZeroU16::new(5).unwrap();
        assert_eq!(
            screen.parser.screen().size(),
            (five, NonZeroU16::new(10).unwrap())
        );
    }

    #[test]
    fn starts_over_when_the_buffer_moved_on() {
        let mut buffer = OutputBuffer::new(8);
        let mut screen = Screen::new((10, 2));
        buffer.push(b"old stuff that is evicted\x1b[2J\x1b[Hnew");
        assert_eq!(contents(&mut screen, &buffer), "new");
    }

    #[test]
    fn alternate_screen_is_entered() {
        let mut buffer = OutputBuffer::new(64);
        let mut screen = Screen::new((10, 2));
        buffer.push(b"\x1b[?1049hvim");
        let painted = screen.render(&buffer);
        assert!(painted.windows(8).any(|w| w == b"\x1b[?1049h"));
    }
}
