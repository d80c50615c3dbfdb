//! JSON control messages of the terminal stream, named by sender, and the `/connect` query.

use serde::{Deserialize, Serialize};

use super::{MAX_COLS, MAX_ROWS};

/// A text frame from the client to the runtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ClientMsg {
    Resize {
        cols: u16,
        rows: u16,
    },
    Signal {
        name: Signal,
    },
    Ping,
    Pong,
    /// The user detached on purpose: this client stops holding the program back at once.
    Detach,
    /// The client's terminal has taken the output up to `offset`; flow control keeps at most
    /// `window` bytes between the program and it (clamped to the window limits).
    Shown {
        offset: u64,
        window: u64,
    },
}

/// A text frame from the runtime to the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerMsg {
    Ready {
        /// The next numbered binary frame starts at this output byte.
        offset: u64,
        protocol: u32,
        /// `since` was older than the oldest byte kept.
        #[serde(default, skip_serializing_if = "is_false")]
        truncated: bool,
        /// The next binary frame is a screen redraw outside the numbered stream.
        #[serde(default, skip_serializing_if = "is_false")]
        redraw: bool,
        /// Input bytes of this client id applied so far (only with `client=`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input: Option<u64>,
        /// The end of the output stream when this connection started, so a resuming client
        /// knows the gap before the bytes arrive (absent from older runtimes).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        end: Option<u64>,
    },
    /// Input bytes of this client id applied so far.
    Ack {
        input: u64,
    },
    Exit(ExitStatus),
    Ping,
    Pong,
    Error {
        message: String,
    },
    /// The session ends in `in_sec` seconds (its TTL): sent when that drops to
    /// [`ENDING_NOTICE`](super::ENDING_NOTICE), at attach when less is left, and whenever the
    /// deadline moves (`catty extend`). Older clients ignore it.
    Ending {
        in_sec: u64,
    },
}

/// How the process ended. `code` is the shell's convention: 128+N when killed by signal N.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    pub code: i32,
    pub signal: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Why a text frame was not understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Valid JSON with a `type` this side does not know: answer or ignore, carry on.
    UnknownType(String),
    Malformed(String),
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::UnknownType(t) => write!(f, "unknown message type {t:?}"),
            ParseError::Malformed(e) => write!(f, "malformed message: {e}"),
        }
    }
}

const CLIENT_TYPES: &[&str] = &["resize", "signal", "ping", "pong", "detach", "shown"];
const SERVER_TYPES: &[&str] = &["ready", "ack", "exit", "ping", "pong", "error", "ending"];

/// Parses a control message, telling an unknown `type` apart from a malformed message.
fn parse<T: serde::de::DeserializeOwned>(text: &str, known: &[&str]) -> Result<T, ParseError> {
    #[derive(Deserialize)]
    struct Tag {
        #[serde(rename = "type")]
        kind: String,
    }
    let tag: Tag = serde_json::from_str(text).map_err(|e| ParseError::Malformed(e.to_string()))?;
    if !known.contains(&tag.kind.as_str()) {
        return Err(ParseError::UnknownType(tag.kind));
    }
    serde_json::from_str(text).map_err(|e| ParseError::Malformed(e.to_string()))
}

impl ClientMsg {
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        parse(text, CLIENT_TYPES)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("control messages always serialize")
    }
}

impl ServerMsg {
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        parse(text, SERVER_TYPES)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("control messages always serialize")
    }
}

/// The signals a client may send, by name on the wire (`"SIGINT"`). A name outside this
/// set makes the message malformed: the runtime answers an `error` naming it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum Signal {
    Int,
    Term,
    Kill,
    Hup,
    Quit,
    Tstp,
    Cont,
    Winch,
    Usr1,
    Usr2,
}

impl Signal {
    const NAMES: [(&'static str, Signal); 10] = [
        ("SIGINT", Signal::Int),
        ("SIGTERM", Signal::Term),
        ("SIGKILL", Signal::Kill),
        ("SIGHUP", Signal::Hup),
        ("SIGQUIT", Signal::Quit),
        ("SIGTSTP", Signal::Tstp),
        ("SIGCONT", Signal::Cont),
        ("SIGWINCH", Signal::Winch),
        ("SIGUSR1", Signal::Usr1),
        ("SIGUSR2", Signal::Usr2),
    ];

    /// `None` for a name outside the allowed set (the server answers `error`).
    pub fn from_name(name: &str) -> Option<Signal> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| *s)
    }

    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, s)| *s == self)
            .map(|(n, _)| *n)
            .unwrap()
    }
}

impl TryFrom<String> for Signal {
    type Error = String;

    fn try_from(name: String) -> Result<Signal, String> {
        Signal::from_name(&name).ok_or_else(|| format!("signal {name:?} is not allowed"))
    }
}

impl From<Signal> for &'static str {
    fn from(signal: Signal) -> &'static str {
        signal.name()
    }
}

/// Query parameters of `GET /connect`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectParams {
    pub since: Option<u64>,
    pub size: Option<(u16, u16)>,
    pub watch: bool,
    pub client: Option<String>,
}

/// A terminal size a session takes: 1 to [`MAX_COLS`] columns by 1 to [`MAX_ROWS`] rows, in
/// the query and in `resize` alike.
pub fn check_size(cols: u64, rows: u64) -> Result<(u16, u16), String> {
    let within = |n: u64, max: u16| (1..=u64::from(max)).contains(&n);
    if within(cols, MAX_COLS) && within(rows, MAX_ROWS) {
        Ok((cols as u16, rows as u16))
    } else {
        Err(format!(
            "the terminal must be 1 to {MAX_COLS} cols by 1 to {MAX_ROWS} rows, got {cols}x{rows}"
        ))
    }
}

/// The size to ask for with a terminal of `cols` x `rows`: the same, or the largest a session
/// takes (a larger terminal shows the session in its top left corner).
pub fn clamp_size((cols, rows): (u16, u16)) -> (u16, u16) {
    (cols.clamp(1, MAX_COLS), rows.clamp(1, MAX_ROWS))
}

impl ConnectParams {
    /// Parses a query string (without `?`). Unknown keys are ignored, for newer clients.
    pub fn parse(query: &str) -> Result<Self, String> {
        let mut params = ConnectParams::default();
        let (mut cols, mut rows) = (None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let number = |what: &str| -> Result<u64, String> {
                value
                    .parse()
                    .map_err(|_| format!("{what} must be a number, got {value:?}"))
            };
            match key {
                "since" => params.since = Some(number("since")?),
                "cols" => cols = Some(number("cols")?),
                "rows" => rows = Some(number("rows")?),
                "mode" if value == "watch" => params.watch = true,
                "mode" if value == "interactive" => params.watch = false,
                "mode" => return Err(format!("mode must be watch or interactive, got {value:?}")),
                "client" if valid_id(value) => params.client = Some(value.to_string()),
                "client" => return Err("client must be 16 to 64 of [0-9A-Za-z_-]".to_string()),
                _ => {}
            }
        }
        params.size = match (cols, rows) {
            (Some(c), Some(r)) => Some(check_size(c, r)?),
            (None, None) => None,
            _ => return Err("cols and rows go together".to_string()),
        };
        Ok(params)
    }

    pub fn to_query(&self) -> String {
        let mut parts = Vec::new();
        if let Some(since) = self.since {
            parts.push(format!("since={since}"));
        }
        if let Some((cols, rows)) = self.size {
            parts.push(format!("cols={cols}&rows={rows}"));
        }
        if self.watch {
            parts.push("mode=watch".to_string());
        }
        if let Some(client) = &self.client {
            parts.push(format!("client={client}"));
        }
        parts.join("&")
    }
}

/// A client-chosen id (`client=` of `/connect`, `request_id` of a create): 16 to 64 of
/// `[0-9A-Za-z_-]`.
pub fn valid_id(id: &str) -> bool {
    (16..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every message against its exact bytes on the wire, both ways.
    #[test]
    fn client_messages_golden() {
        let cases = [
            (
                ClientMsg::Resize {
                    cols: 120,
                    rows: 40,
                },
                r#"{"type":"resize","cols":120,"rows":40}"#,
            ),
            (
                ClientMsg::Signal { name: Signal::Int },
                r#"{"type":"signal","name":"SIGINT"}"#,
            ),
            (ClientMsg::Ping, r#"{"type":"ping"}"#),
            (ClientMsg::Detach, r#"{"type":"detach"}"#),
            (ClientMsg::Pong, r#"{"type":"pong"}"#),
            (
                ClientMsg::Shown {
                    offset: 4096,
                    window: 65536,
                },
                r#"{"type":"shown","offset":4096,"window":65536}"#,
            ),
        ];
        for (msg, wire) in cases {
            assert_eq!(msg.to_json(), wire);
            assert_eq!(ClientMsg::parse(wire).unwrap(), msg);
        }
    }

    #[test]
    fn server_messages_golden() {
        let ready = |truncated, redraw, input| ServerMsg::Ready {
            offset: 42,
            protocol: 1,
            truncated,
            redraw,
            input,
            end: None,
        };
        let cases = [
            (
                ready(false, false, None),
                r#"{"type":"ready","offset":42,"protocol":1}"#,
            ),
            (
                ready(true, false, Some(7)),
                r#"{"type":"ready","offset":42,"protocol":1,"truncated":true,"input":7}"#,
            ),
            (
                ready(false, true, None),
                r#"{"type":"ready","offset":42,"protocol":1,"redraw":true}"#,
            ),
            (
                ServerMsg::Ready {
                    offset: 42,
                    protocol: 1,
                    truncated: false,
                    redraw: false,
                    input: Some(0),
                    end: Some(99),
                },
                r#"{"type":"ready","offset":42,"protocol":1,"input":0,"end":99}"#,
            ),
            (ServerMsg::Ack { input: 9 }, r#"{"type":"ack","input":9}"#),
            (
                ServerMsg::Exit(ExitStatus {
                    code: 0,
                    signal: None,
                }),
                r#"{"type":"exit","code":0,"signal":null}"#,
            ),
            (
                ServerMsg::Exit(ExitStatus {
                    code: 130,
                    signal: Some("SIGINT".into()),
                }),
                r#"{"type":"exit","code":130,"signal":"SIGINT"}"#,
            ),
            (ServerMsg::Ping, r#"{"type":"ping"}"#),
            (ServerMsg::Pong, r#"{"type":"pong"}"#),
            (
                ServerMsg::Ending { in_sec: 300 },
                r#"{"type":"ending","in_sec":300}"#,
            ),
            (
                ServerMsg::Error {
                    message: "no".into(),
                },
                r#"{"type":"error","message":"no"}"#,
            ),
        ];
        for (msg, wire) in cases {
            assert_eq!(msg.to_json(), wire);
            assert_eq!(ServerMsg::parse(wire).unwrap(), msg);
        }
    }

    #[test]
    fn newer_fields_are_ignored() {
        let wire = r#"{"type":"ready","offset":1,"protocol":1,"color":"blue"}"#;
        assert!(matches!(
            ServerMsg::parse(wire),
            Ok(ServerMsg::Ready { offset: 1, .. })
        ));
    }

    #[test]
    fn unknown_type_is_told_apart_from_malformed() {
        assert_eq!(
            ClientMsg::parse(r#"{"type":"teleport","to":"mars"}"#),
            Err(ParseError::UnknownType("teleport".into()))
        );
        assert!(matches!(
            ClientMsg::parse(r#"{"type":"resize","cols":"x"}"#),
            Err(ParseError::Malformed(_))
        ));
        assert!(matches!(
            ClientMsg::parse("not json"),
            Err(ParseError::Malformed(_))
        ));
        assert!(matches!(
            ClientMsg::parse(r#"{"cols":1}"#),
            Err(ParseError::Malformed(_))
        ));
        // A server-only type is unknown to the server.
        assert_eq!(
            ClientMsg::parse(r#"{"type":"ready"}"#),
            Err(ParseError::UnknownType("ready".into()))
        );
    }

    #[test]
    fn signal_names() {
        for name in [
            "SIGINT", "SIGTERM", "SIGKILL", "SIGHUP", "SIGQUIT", "SIGTSTP", "SIGCONT", "SIGWINCH",
            "SIGUSR1", "SIGUSR2",
        ] {
            assert_eq!(Signal::from_name(name).unwrap().name(), name);
        }
        assert_eq!(Signal::from_name("SIGSEGV"), None);
        assert_eq!(Signal::from_name("sigint"), None);
        let err = ClientMsg::parse(r#"{"type":"signal","name":"SIGSEGV"}"#).unwrap_err();
        assert!(
            err.to_string()
                .contains("signal \"SIGSEGV\" is not allowed"),
            "{err}"
        );
    }

    #[test]
    fn connect_params_round_trip() {
        let params = ConnectParams {
            since: Some(5),
            size: Some((120, 40)),
            watch: true,
            client: Some("abcdefghij0123456789".into()),
        };
        let query = params.to_query();
        assert_eq!(
            query,
            "since=5&cols=120&rows=40&mode=watch&client=abcdefghij0123456789"
        );
        assert_eq!(ConnectParams::parse(&query).unwrap(), params);
        assert_eq!(ConnectParams::parse("").unwrap(), ConnectParams::default());
        assert_eq!(
            ConnectParams::parse("future=1").unwrap(),
            ConnectParams::default()
        );
    }

    #[test]
    fn connect_params_reject_bad_values() {
        for bad in [
            "since=-1",
            "since=x",
            "cols=0&rows=5",
            "cols=80",
            "rows=24",
            "mode=spy",
            "client=short",
            "client=has%20space0123456789",
        ] {
            assert!(ConnectParams::parse(bad).is_err(), "{bad} was accepted");
        }
    }
}

/// Property tests: whatever a peer sends, the parsers answer (never panic), and what they
/// accept is within the contract. `PROPTEST_CASES` sets how many inputs (README).
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_text_is_parsed_or_refused(text in "\\PC{0,300}") {
            let _ = ClientMsg::parse(&text);
            let _ = ServerMsg::parse(&text);
            let _ = ConnectParams::parse(&text);
        }

        #[test]
        fn client_messages_within_the_contract(
            kind in prop::sample::select(vec!["resize", "signal", "ping", "pong", "ack", "other"]),
            cols in any::<i64>(),
            rows in any::<i64>(),
            name in "(SIG)?[A-Z0-9]{0,6}",
        ) {
            let text = format!(
                r#"{{"type":"{kind}","cols":{cols},"rows":{rows},"name":"{name}"}}"#
            );
            match ClientMsg::parse(&text) {
                Ok(ClientMsg::Resize { cols: c, rows: r }) => {
                    prop_assert_eq!((i64::from(c), i64::from(r)), (cols, rows));
                }
                Ok(ClientMsg::Signal { name: signal }) => {
                    prop_assert_eq!(Signal::from_name(&name), Some(signal));
                }
                Ok(_) => prop_assert!(kind == "ping" || kind == "pong"),
                Err(ParseError::UnknownType(t)) => prop_assert!(!CLIENT_TYPES.contains(&t.as_str())),
                Err(ParseError::Malformed(_)) => prop_assert!(kind != "ping" && kind != "pong"),
            }
        }

        #[test]
        fn queries_within_the_contract(
            pairs in prop::collection::vec(
                ("(since|cols|rows|mode|client|other)", "[0-9a-zA-Z_=-]{0,70}"),
                0..8,
            ),
        ) {
            let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            if let Ok(params) = ConnectParams::parse(&query.join("&")) {
                if let Some((cols, rows)) = params.size {
                    prop_assert!((1..=MAX_COLS).contains(&cols) && (1..=MAX_ROWS).contains(&rows));
                }
                if let Some(client) = &params.client {
                    prop_assert!(valid_id(client));
                }
                prop_assert_eq!(ConnectParams::parse(&params.to_query()), Ok(params));
            }
        }

        #[test]
        fn valid_params_round_trip(
            since in any::<Option<u64>>(),
            size in prop::option::of((1..=MAX_COLS, 1..=MAX_ROWS)),
            watch in any::<bool>(),
            client in prop::option::of("[0-9A-Za-z_-]{16,64}"),
        ) {
            let params = ConnectParams { since, size, watch, client };
            prop_assert_eq!(ConnectParams::parse(&params.to_query()), Ok(params));
        }
    }
}
