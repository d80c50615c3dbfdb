//! ssh-style escapes in what the user types: `~` right after Enter starts one; `~.` detaches,
//! `~?` lists the escapes, `~~` sends one `~`. Pure logic, no I/O.

/// What typed input amounts to.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Action {
    Send(Vec<u8>),
    Detach,
    Help,
}

pub(super) const HELP: &str = "Supported escapes (after Enter):\n  ~.  detach (the session keeps running)\n  ~?  this list\n  ~~  send a single ~";

pub(super) struct Escapes {
    at_line_start: bool,
    pending_tilde: bool,
}

impl Default for Escapes {
    fn default() -> Self {
        // The very first keystroke counts as the start of a line, as in ssh.
        Escapes {
            at_line_start: true,
            pending_tilde: false,
        }
    }
}

impl Escapes {
    pub(super) fn feed(&mut self, input: &[u8]) -> Vec<Action> {
        let mut actions = Vec::new();
        let mut send = Vec::with_capacity(input.len());
        for &byte in input {
            if self.pending_tilde {
                self.pending_tilde = false;
                match byte {
                    b'.' => {
                        flush(&mut send, &mut actions);
                        actions.push(Action::Detach);
                        return actions;
                    }
                    b'?' => {
                        flush(&mut send, &mut actions);
                        actions.push(Action::Help);
                        self.at_line_start = true;
                        continue;
                    }
                    b'~' => send.push(b'~'),
                    other => send.extend_from_slice(&[b'~', other]),
                }
            } else if byte == b'~' && self.at_line_start {
                self.pending_tilde = true;
                continue;
            } else {
                send.push(byte);
            }
            self.at_line_start = byte == b'\r' || byte == b'\n';
        }
        flush(&mut send, &mut actions);
        actions
    }
}

fn flush(send: &mut Vec<u8>, actions: &mut Vec<Action>) {
    if !send.is_empty() {
        actions.push(Action::Send(std::mem::take(send)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(bytes: &[u8]) -> Action {
        Action::Send(bytes.to_vec())
    }

    #[test]
    fn detach_after_enter() {
        let mut e = Escapes::default();
        assert_eq!(e.feed(b"ls\r"), [send(b"ls\r")]);
        assert_eq!(e.feed(b"~"), []);
        assert_eq!(e.feed(b"."), [Action::Detach]);
    }

    #[test]
    fn in_one_read() {
        let mut e = Escapes::default();
        assert_eq!(e.feed(b"echo\r~."), [send(b"echo\r"), Action::Detach]);
    }

    #[test]
    fn first_keystroke_is_a_line_start() {
        assert_eq!(Escapes::default().feed(b"~."), [Action::Detach]);
    }

    #[test]
    fn tilde_inside_a_line_is_plain() {
        let mut e = Escapes::default();
        assert_eq!(e.feed(b"a~."), [send(b"a~.")]);
    }

    #[test]
    fn help_and_double_tilde_and_other() {
        let mut e = Escapes::default();
        assert_eq!(e.feed(b"\r~?"), [send(b"\r"), Action::Help]);
        assert_eq!(e.feed(b"~~"), [send(b"~")]);
        assert_eq!(e.feed(b"\r~x"), [send(b"\r~x")]);
        // After `~~` the line has started: a later `~.` is plain text.
        let mut e = Escapes::default();
        assert_eq!(e.feed(b"~~~."), [send(b"~~.")]);
    }
}
