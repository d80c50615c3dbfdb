//! The wire contract shared by the client, the daemon and the runtime. Types only: no I/O,
//! no tokio, no hyper.
//!
//! # The runtime's endpoints (`catty exec`)
//!
//! | method and path | auth | does |
//! | --- | --- | --- |
//! | `GET /healthz` | none | `200 ok`; once the program exited, its code in `x-catty-exit` ([`transcript::EXIT_HEADER`]) |
//! | `POST /upload` | bearer | body `application/zip`, at most 100 MiB; unpacks into the workspace |
//! | `GET /connect` | bearer | WebSocket upgrade; the terminal stream below |
//! | `POST /git[?branch=…]` | bearer | body a git bundle of `HEAD`; makes the workspace a git repository (below) |
//! | `GET /sync/manifest[?after=G]` | bearer | the workspace as [`sync::Manifest`] (below) |
//! | `GET /sync/file?path=P` | bearer | one file's bytes (`application/octet-stream`) |
//! | `GET /sync/bundle[?base=SHA]` | bearer | the session's commits as a git bundle |
//! | `POST /sync/pulled?generation=G` | bearer | the client applied generation `G`; `204` |
//! | `GET /sync/pulled` | bearer | [`sync::Pulled`]: whether work is kept for a pull |
//! | `GET /transcript?since=N[&wait=1]` | bearer | the output from offset `N` as raw bytes (below) |
//! | `POST /ttl` | bearer | body [`api::SetTtl`]; moves the session's deadline (below) |
//!
//! Auth is `Authorization: Bearer <CONNECT_TOKEN>`, compared in constant time; a missing or
//! wrong token is `401`. Errors are JSON: `{"error":{"code":"…","message":"…"}}`
//! ([`api::ErrorBody`]). `/upload` answers `200` with [`api::UploadDone`], `400` naming the
//! first bad entry (and leaves the workspace empty), `409` once a workspace was uploaded or
//! the process has started, `413` past the size limit (the read stops there).
//!
//! # The deadline (`POST /ttl`)
//!
//! A runtime started with `CATTY_TTL_SEC` ends the session that long after its start. `POST
//! /ttl` with [`api::SetTtl`] `{"in_sec":N}` moves that deadline to `N` seconds from now (`N`
//! at least 1; the deadline is clamped to [`api::MAX_TTL_SEC`] from the runtime's start) and
//! answers `200` [`api::Ttl`], the deadline it took; `400` for another body. The daemon sends
//! it for `catty extend` (`POST /v1/sessions/{id}/extend` with [`api::ExtendSession`]), after
//! it moved its own backstop. Every attached client is told the new deadline (`ending`, below).
//!
//! # The history (`POST /git`)
//!
//! After `/upload`, a client whose directory is the top of a git work tree sends `git bundle
//! create - HEAD` ([`git::GIT_BUNDLE_TYPE`]; empty for a repository without commits), with
//! [`git::GitParams`] as the query: the branch (none for a detached `HEAD`), the shallow
//! boundary commits when the history is cut, and the client's `user.name`/`user.email`. The
//! runtime makes the workspace a repository whose `HEAD` is that commit on that branch and
//! whose index is `HEAD` (so the uploaded files show as the user's uncommitted changes), and
//! sets the identity repository-locally only where `git commit` would otherwise fail. The zip
//! and the bundle share one budget: the body may be at most [`UPLOAD_LIMIT_BYTES`] minus the
//! zip's size (`413` past it). Answers: `200` [`git::GitDone`]; `400` for a bad query or
//! bundle; `409` before `/upload`, after a first `/git`, once the process has started, or
//! when the upload holds a `.git`; `500` if git fails. On any error no `.git` is left. The
//! program does not start while `/git` runs.
//!
//! # Sync-back (`/sync/…`)
//!
//! The agent's work comes back on requests of their own, never on the terminal stream, so
//! file traffic cannot delay a keystroke. Each request is independent (a client that
//! reconnects simply asks again), and the runtime does the work off its async thread.
//!
//! - `GET /sync/manifest` answers [`sync::Manifest`]: every file and symlink that git would
//!   track in the session's tree (the workspace's ignore files, tracked files, and the
//!   defaults of [`workspace`]; never `.git/`), with modes, sizes and SHA-256s, at a
//!   `generation` that grows each time the workspace changes. With `after=G` the answer
//!   waits until the generation passes `G`, at most [`sync::MANIFEST_WAIT_SEC`]; then it
//!   answers the current manifest anyway. This is how a client follows changes live.
//! - `GET /sync/file?path=P` (`P` percent-encoded, as in the manifest) answers the file's
//!   bytes, at most [`sync::SYNC_FILE_MAX_BYTES`], with `x-catty-sha256`; `404` for a path
//!   that is not a file of the manifest (the client asks for the manifest again).
//! - `GET /sync/bundle?base=SHA` answers a git bundle of the workspace's `HEAD` with
//!   `SHA` (what was uploaded) as its prerequisite when given, `204` when the workspace has
//!   no commits (or none that `SHA` lacks), at most [`sync::BUNDLE_MAX_BYTES`]. A `SHA` the
//!   workspace does not have gives the whole history.
//!
//! - `POST /sync/pulled?generation=G` ([`sync::SYNC_PULLED_PATH`]) says the client's
//!   directory now holds what the manifest of generation `G` held (conflicts count: the
//!   session's version was kept locally); `204`, `400` for another query. The runtime keeps
//!   the highest `G` it was told; a `G` it never served counts for every one up to it.
//!   `GET /sync/pulled` answers [`sync::Pulled`], whether the runtime holds such work now
//!   (below); stop-all asks it to name what it discards.
//!
//! Work is kept until it is pulled. The runtime notes the manifest's generation just before
//! the program starts (after `/upload` and `/git`): that is what was uploaded, which the
//! client has. After the program exits, the runtime stays for the grace period, then for as
//! long as the current generation is above both that one and the highest acknowledged, at
//! most `CATTY_RETAIN_SEC` from the exit. So a session nobody synced whose workspace is
//! unchanged since the upload ends after the grace period; one whose manifest cannot be
//! made keeps nothing (nothing could pull it). The TTL and SIGTERM end it regardless.
//!
//! A client treats all of it as hostile input (SPEC section 9): it checks every path and
//! size before it writes, and writes nothing outside its directory or into `.git/`.
//!
//! # The transcript (`GET /transcript`)
//!
//! Every output byte is kept in memory (the most recent [`OUTPUT_BUFFER_BYTES`]) and on the
//! runtime's disk, outside the workspace, in a transcript bounded by `CATTY_TRANSCRIPT_BYTES`
//! (default 1 GiB; the files never hold more, and hold at least the most recent half of it).
//! When the disk cannot keep up or fails, the output still flows; the transcript then starts
//! again after the gap, and a warning is logged.
//!
//! `GET /transcript?since=N` ([`transcript::TranscriptParams`]) answers `200` with the bytes
//! from `N` to the end of the output at the time of the answer, `application/octet-stream`
//! with a `content-length`, and headers: [`transcript::START_HEADER`] the offset of the first
//! byte (`N`, or the oldest byte kept when `N` is older: the client sees the truncation),
//! [`transcript::END_HEADER`] one past the last, and, once the program has exited, its code
//! in [`transcript::EXIT_HEADER`] (then nothing more will come; [`transcript::ENDED_HEADER`]
//! says the same when the session is being ended from outside first). With `wait=1` an answer
//! that would be empty waits for output, the exit or the session's end, at most
//! [`transcript::TRANSCRIPT_WAIT`] (then it is empty): a client follows a program by asking
//! again from the end it got. An answer holds one chunk of at most [`FRAME_MAX_BYTES`] in
//! memory; if its bytes stop being kept while it is sent, it is cut (an error, never short).
//! `400` for another query. It works while the runtime is up, after the exit too (the grace
//! and retention periods).
//!
//! # The terminal stream (`GET /connect`)
//!
//! Query parameters ([`ConnectParams`]), all optional:
//!
//! - `since=N`: resume the output stream at byte offset `N`.
//! - `cols=C&rows=R`: this client's terminal size.
//! - `mode=watch`: read-only. Input, resizes and signals from a watch client are ignored.
//! - `client=ID`: an id the client chooses once (16 to 64 characters of `[0-9A-Za-z_-]`) and
//!   keeps across reconnects. It makes input exactly-once (below).
//!
//! Frames (WebSocket, no compression):
//!
//! - **Binary, server → client**: PTY output, at most [`FRAME_MAX_BYTES`] (64 KiB) a frame.
//!   Every byte the process writes is numbered from 0. After `ready{offset: N}`, binary frames carry consecutive bytes from `N` on, with no
//!   gap and no repeat, except for one redraw frame (below).
//! - **Binary, client → server**: input bytes for the PTY.
//! - **Text**: JSON control messages, [`ClientMsg`] and [`ServerMsg`]:
//!
//! | direction | message | meaning |
//! | --- | --- | --- |
//! | client → server | `{"type":"resize","cols":C,"rows":R}` | this client's terminal size |
//! | client → server | `{"type":"signal","name":"SIGINT"}` | a signal for the foreground job ([`Signal`]) |
//! | client → server | `{"type":"detach"}` | leaving on purpose: hold nothing for me; the server ends the connection |
//! | client → server | `{"type":"shown","offset":N,"window":W}` | my terminal has taken output up to `N`; keep at most `W` bytes in flight for me (protocol 2) |
//! | either way | `{"type":"ping"}` / `{"type":"pong"}` | keepalive (below) |
//! | server → client | `{"type":"ready","offset":N,"protocol":1,…}` | first on every connection; optional `truncated`, `redraw`, `input`, `end` (below) |
//! | server → client | `{"type":"ack","input":M}` | this client id's input applied so far |
//! | server → client | `{"type":"exit","code":0,"signal":null}` | after the last output byte |
//! | server → client | `{"type":"error","message":"…"}` | a message not understood, or why the connection ends |
//! | server → client | `{"type":"ending","in_sec":S}` | the session's TTL ends it in `S` seconds (below) |
//!
//! Order on a new connection: the server sends `ready` first. If the client gave no `since`,
//! `ready` has `"redraw":true` and the next binary frame is a rendering of the current screen,
//! which is *not* part of the numbered stream; numbered output from `offset` follows it. A
//! `since` still in memory or in the transcript (above) resumes exactly there, from the disk
//! first, then memory. If `since` is older than the oldest byte kept (at least the most
//! recent [`OUTPUT_BUFFER_BYTES`], 8 MiB, are), `ready`
//! has `"truncated":true` and `offset` is the oldest byte kept. A `since` beyond the end of the
//! stream is clamped to the end. `ready.end` is where the stream ended when the connection
//! started, so a resuming client knows the size of its gap before any byte arrives (it may
//! close and come back without `since`, for a redraw, when the gap is too large to replay).
//! When the process has exited and the client has received every byte, the server sends
//! `exit`.
//!
//! `ending` warns of the TTL: the runtime sends it to each connection when the time left
//! drops to [`ENDING_NOTICE`] (at once on a connection that starts with less left), and
//! whenever the deadline moves (`POST /ttl`); a deadline moved past [`ENDING_NOTICE`] warns
//! again when the time left drops to it. No protocol bump: an older client ignores it.
//!
//! ## Input exactly once
//!
//! A client that passes `client=ID` numbers its own input bytes from 0 for the life of that
//! id. The runtime counts the bytes of each id that it has applied (written to the PTY) and
//! reports the count as `ready.input` on every connection, and as `{"type":"ack","input":M}`
//! now and then while connected (after each 16 KiB of input, and in reply to a `ping` when
//! input was applied since the last acknowledgement).
//! The client keeps what it sent and drops it once acknowledged; after a reconnect it
//! resends only the bytes from `ready.input` on. When a connection with an id arrives, any
//! older connection with the same id is cut first and its late input discarded, so a byte is
//! never applied twice. Without `client`, input is applied as it arrives and not tracked.
//!
//! ## Flow control
//!
//! While at least one interactive client is attached, the runtime stops reading the PTY when
//! the slowest interactive client is more than its window behind, so the program slows down
//! and nothing is dropped. A client's place is what it last reported `shown` (the bytes its
//! terminal has taken), or, until it reports, what was sent to it; its window is the `window`
//! it last reported, within [`FLOW_WINDOW_MIN_BYTES`] and [`FLOW_WINDOW_BYTES`], or
//! [`FLOW_WINDOW_BYTES`] until it reports. So every byte between the program and a
//! reporting client's terminal (the runtime's buffer, both sockets, the client's queue)
//! counts, and the client sizes the window to what its terminal drains in a moment: a
//! Ctrl-C waits behind that much output, not behind a fixed megabyte. A client reports
//! whenever a quarter of its window was shown since its last report, and with its ping
//! when anything was.
//!
//! A stuck reader cannot hold the program for everyone: an interactive client that holds the
//! pump back, whose place has not moved for [`STUCK_READER`] while its link is alive (it
//! still pings), stops counting until it is within its window again; it catches up by offset
//! meanwhile (from the transcript when the ring has moved on). A silent link is not a stuck
//! reader: it is dropped after [`DEAD_LINK`] and held for [`HOLD`] (below). Watch clients never hold the program back; a watch
//! client that falls out of the buffer reads on from the transcript; one that falls out of
//! that too gets an `error` and is disconnected (it reconnects with `since` and sees
//! `truncated`). Control messages never wait behind output.
//!
//! An interactive client whose connection ends without `detach` (a reset, a dead link, a
//! killed client) keeps its place for [`HOLD`] (15 s) after the runtime notices: its last
//! cursor still counts for flow control, so a fast program pauses for it to come back. The
//! same `client=ID` attaching again takes the place over; `detach` (read before the
//! connection ends: the server closes it in answer, and the client waits for that close)
//! or the hold running out releases it. With no client attached or held for, the program
//! runs freely.
//!
//! ## Connections
//!
//! A client message may be at most [`MESSAGE_MAX_BYTES`] whole or in fragments (else the
//! connection is closed with 1009), a text message must be UTF-8 (else 1007), and fragments
//! must come in order and every frame masked (else 1002).
//!
//! Input waiting for the program is at most [`INPUT_QUEUE_BYTES`] per session; past it the
//! runtime stops reading input until the program reads.
//!
//! The daemon and the runtime each keep at most [`MAX_CONNECTIONS`] connections; past it a
//! new one takes the place of the oldest that has not shown the token. A request head must
//! arrive within [`HEADER_READ_TIMEOUT`], also between requests on a kept-alive connection;
//! a request body that brings nothing for [`BODY_STALL_TIMEOUT`] is abandoned (408).
//!
//! ## Size, keepalive, versions
//!
//! The PTY size is the size of the interactive client that most recently attached, resized or
//! typed, at most [`MAX_COLS`] x [`MAX_ROWS`] (a larger size in the query is a 400, in a
//! `resize` an `error`; the client asks for its terminal's size within those).
//!
//! Keepalive: the client sends `ping` every [`PING_INTERVAL`] (1 s), the runtime pings when it
//! has sent nothing for twice as long, and each answers the other's `ping` with `pong`. An
//! idle session costs one small frame a second each way (measured: 21 bytes up, 17 down). So a healthy link is never silent for
//! much more than a second, whatever the program does: the client shows its status line
//! after 2 s without any frame, and each side treats [`DEAD_LINK`] (8 s) without any frame
//! as a dead link (the client reconnects with `since`, the runtime drops the connection and
//! holds the client's place), so a silent drop is noticed within 10 s. Older peers
//! interoperate: each answers the other's pings. `ready.protocol` is [`PROTOCOL_VERSION`];
//! fields are only ever added. **Unknown types:** the server answers an `error` naming the
//! type and carries on; the client ignores them.

pub mod api;
pub mod control;
pub mod git;
pub mod percent;
pub mod sync;
pub mod transcript;
pub mod workspace;

use std::time::Duration;

pub use api::Agent;
pub use control::{ClientMsg, ConnectParams, ExitStatus, ParseError, ServerMsg, Signal};

/// The runtime's endpoints, relative to its base URL (the daemon has a `/healthz` too).
pub const HEALTHZ_PATH: &str = "/healthz";
pub const UPLOAD_PATH: &str = "/upload";
pub const CONNECT_PATH: &str = "/connect";
pub const GIT_PATH: &str = "/git";

/// The runtime's path that moves the session's deadline.
pub const TTL_PATH: &str = "/ttl";

/// How long before its TTL ends a session the runtime warns attached clients (`ending`):
/// time to finish a thought, or to run `catty extend`.
pub const ENDING_NOTICE: Duration = Duration::from_secs(5 * 60);

/// Version carried in `ready.protocol`; bumped only for changes an old peer cannot ignore.
/// 2: the client may report `shown` (an older runtime would answer it with an `error`).
pub const PROTOCOL_VERSION: u32 = 2;

/// How far the slowest interactive client may lag before the runtime stops reading the PTY,
/// at most: the window of a client that does not report `shown`, and the largest one a
/// client may ask for. Large enough to keep a fast link busy.
pub const FLOW_WINDOW_BYTES: u64 = 1024 * 1024;

/// The smallest window a client may ask for: four reports' worth of a slow terminal, so the
/// program is not stopped between two reports.
pub const FLOW_WINDOW_MIN_BYTES: u64 = 16 * 1024;

/// An interactive client holding the program back whose place has not moved for this long,
/// while it still pings, stops holding it. A terminal that takes nothing for 5 s is stopped,
/// not slow (a window drains in well under a second), and neither the program nor the other
/// clients should wait on it; a client whose link went silent is dropped after [`DEAD_LINK`]
/// and held for [`HOLD`] instead.
pub const STUCK_READER: Duration = Duration::from_secs(5);

/// Each side pings a connection it has sent nothing on for this long, and the other answers:
/// on an idle link one small frame a second each way (about 20 bytes of WebSocket, some 90
/// with TCP/IP headers), so a client hears from a healthy runtime at least every second and
/// can tell a dead link from a quiet program.
pub const PING_INTERVAL: Duration = Duration::from_secs(1);

/// No frame for this long means the link is dead (eight missed pings): the client
/// reconnects and the runtime drops the connection, both well within 10 s of the failure.
pub const DEAD_LINK: Duration = Duration::from_secs(8);

/// How long an interactive client that vanished without `detach` still holds flow control,
/// so a fast program pauses for it to come back instead of running ahead of it.
pub const HOLD: Duration = Duration::from_secs(15);

/// Largest message a client may send, whole or in fragments: input is the client's reads
/// and pastes, sent in frames of at most [`FRAME_MAX_BYTES`], and control messages are a few
/// bytes. A larger one closes the connection with 1009 (message too big).
pub const MESSAGE_MAX_BYTES: usize = 1024 * 1024;

/// Largest binary frame the runtime sends: big enough for throughput, small enough that a
/// control message never waits long behind one.
pub const FRAME_MAX_BYTES: usize = 64 * 1024;

/// The largest terminal a session takes. Its screen emulator costs about 32 bytes a cell and
/// a redraw about one byte a cell, so a session's screen stays under 16 MiB and a redraw
/// under a few MiB whatever a client asks; a client whose terminal is larger asks for this.
pub const MAX_COLS: u16 = 1000;
pub const MAX_ROWS: u16 = 500;

/// Output bytes a session keeps at least, for clients that resume with `since`.
pub const OUTPUT_BUFFER_BYTES: usize = 8 * 1024 * 1024;

/// Connections the daemon and the runtime each keep open at most, under the common limit of
/// 1024 descriptors with room for a session's files. Past it, a new connection closes the
/// oldest one that has not shown the token; with every one proven, the new one is closed.
pub const MAX_CONNECTIONS: usize = 512;

/// How long the daemon and the runtime wait for a request's head (from the connection's
/// start, or from the previous request on a kept-alive connection) before closing it.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// An upload or bundle body that brings no byte for this long is abandoned (408), and the
/// upload slot is free again.
pub const BODY_STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest upload body the runtime reads; beyond it the answer is 413.
pub const UPLOAD_LIMIT_BYTES: u64 = 100 * 1024 * 1024;

/// Input a session holds for its program at most, over all its clients. Past it the runtime
/// reads no more input until the program takes some, so a client's sends wait (TCP's own
/// back-pressure) instead of the runtime's memory growing; such a client is not taken for a
/// dead link while it waits.
pub const INPUT_QUEUE_BYTES: usize = MESSAGE_MAX_BYTES;

/// The runtime acknowledges a client's input after this many bytes (and on every ping).
pub const INPUT_ACK_BYTES: u64 = 16 * 1024;
