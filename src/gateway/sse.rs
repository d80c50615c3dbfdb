//! Server-sent events read on the side of a stream, as the bytes pass: any chunk split, lines
//! ended by `\n`, `\r\n` or `\r` (a `\r\n` split between two chunks included), `data:` with
//! or without its space, comments skipped, several `data` lines of one event joined by `\n`
//! (the WHATWG rules). A line longer than [`LINE_MAX_BYTES`] is dropped with its event, so a
//! hostile upstream costs at most that much memory.

/// The longest line kept. Usage events are a few hundred bytes; content deltas a few KiB.
pub(super) const LINE_MAX_BYTES: usize = 1024 * 1024;

/// One event: its `event:` name (empty when none) and its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Event {
    pub name: String,
    pub data: String,
}

#[derive(Default)]
pub(super) struct SseReader {
    line: Vec<u8>,
    /// The line being read is over the bound: its bytes are skipped until its end.
    overlong: bool,
    /// The last byte was `\r`: a `\n` right after it ends nothing more.
    after_cr: bool,
    name: String,
    data: String,
    has_data: bool,
    /// The event being read lost a line to the bound: it is dropped.
    spoiled: bool,
}

impl SseReader {
    /// Reads `chunk`, calling `on_event` for each event it completes.
    pub(super) fn feed(&mut self, chunk: &[u8], on_event: &mut impl FnMut(Event)) {
        for &byte in chunk {
            let after_cr = std::mem::replace(&mut self.after_cr, byte == b'\r');
            match byte {
                b'\n' if after_cr => {}
                b'\n' | b'\r' => self.end_line(on_event),
                _ if self.overlong => {}
                _ if self.line.len() >= LINE_MAX_BYTES => {
                    self.overlong = true;
                    self.spoiled = true;
                    self.line.clear();
                }
                _ => self.line.push(byte),
            }
        }
    }

    /// The stream ended: an event not closed by a blank line is dispatched all the same (a
    /// provider's last event may lack it; a cut stream's last whole lines still count).
    pub(super) fn finish(&mut self, on_event: &mut impl FnMut(Event)) {
        if !self.line.is_empty() || self.overlong {
            self.end_line(on_event);
        }
        self.dispatch(on_event);
    }

    fn end_line(&mut self, on_event: &mut impl FnMut(Event)) {
        let line = std::mem::take(&mut self.line);
        if std::mem::take(&mut self.overlong) {
            return;
        }
        if line.is_empty() {
            return self.dispatch(on_event);
        }
        let line = String::from_utf8_lossy(&line);
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "event" => self.name = value.to_string(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, on_event: &mut impl FnMut(Event)) {
        let name = std::mem::take(&mut self.name);
        let data = std::mem::take(&mut self.data);
        let had = std::mem::take(&mut self.has_data);
        if had && !std::mem::take(&mut self.spoiled) {
            on_event(Event { name, data });
        }
        self.spoiled = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&[u8]]) -> Vec<Event> {
        let mut reader = SseReader::default();
        let mut out = Vec::new();
        for chunk in chunks {
            reader.feed(chunk, &mut |e| out.push(e));
        }
        reader.finish(&mut |e| out.push(e));
        out
    }

    fn event(name: &str, data: &str) -> Event {
        Event {
            name: name.into(),
            data: data.into(),
        }
    }

    #[test]
    fn fields_lines_and_comments() {
        let stream = b": ping\nevent: a\ndata: 1\ndata:2\n\nevent:b\r\ndata: x y\r\n\r\ndata: last";
        assert_eq!(
            events(&[stream]),
            [event("a", "1\n2"), event("b", "x y"), event("", "last")]
        );
    }

    #[test]
    fn a_crlf_split_between_chunks_is_one_line_end() {
        let whole = events(&[b"data: 1\r\n\r\ndata: 2\r\n\r\n"]);
        assert_eq!(
            whole,
            events(&[b"data: 1\r", b"\n\r", b"\ndata: 2\r\n\r\n"])
        );
        assert_eq!(whole, [event("", "1"), event("", "2")]);
    }

    #[test]
    fn an_overlong_line_drops_its_event_only() {
        let long = vec![b'x'; LINE_MAX_BYTES + 10];
        let mut stream = b"data: ".to_vec();
        stream.extend_from_slice(&long);
        stream.extend_from_slice(b"\ndata: tail\n\ndata: next\n\n");
        assert_eq!(events(&[&stream]), [event("", "next")]);
    }
}
