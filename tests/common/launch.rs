//! The one launcher of `catty api` for tests and benches: started on `127.0.0.1:0`, its
//! address read back from the `listening on ADDR` line it prints, and returned once it answers
//! `/healthz`. Never a port bound, dropped and passed on: another test could take it between.
//! The benches include this file too (`#[path]`), so it needs only std and `listen.rs`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::listen::listening_addr;

/// How long a daemon may take from its start to answering (a loaded machine included).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// `catty api ARGS`, to which the caller adds its environment and where stderr goes. A bench
/// may run another build: `CATTY_BENCH_BIN` (a release build, for numbers).
pub fn api_command(args: &[&str]) -> Command {
    let bin = std::env::var_os("CATTY_BENCH_BIN");
    let mut cmd = Command::new(
        bin.as_deref()
            .unwrap_or(env!("CARGO_BIN_EXE_catty").as_ref()),
    );
    cmd.arg("api").args(args).stdin(Stdio::null());
    cmd
}

/// Starts `cmd` (from [`api_command`]) on a port of the kernel's choosing and waits until it
/// answers; returns the process and the address it printed.
pub fn start_api(mut cmd: Command) -> (Child, SocketAddr) {
    cmd.args(["--addr", "127.0.0.1:0"]).stdout(Stdio::piped());
    let mut child = cmd.spawn().expect("start catty api");
    let addr = listening_addr(&mut child);
    let deadline = Instant::now() + START_TIMEOUT;
    while !healthz(addr) {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("catty api on {addr} exited at start: {status}");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("catty api on {addr} did not answer /healthz in time");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, addr)
}

/// Whether `GET /healthz` on `addr` answers 200, over a plain socket.
pub fn healthz(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut reply = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut reply).is_ok()
        && reply.starts_with("HTTP/1.1 200")
}
