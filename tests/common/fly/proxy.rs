//! Fly's edge, small: each connection's first request head picks a machine by
//! `fly-force-instance-id` (reference §6), the head is replayed to that machine's runtime with
//! the proxy's headers added, then bytes flow both ways (WebSocket upgrades included) until
//! either side closes or the test cuts the links.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::lifecycle;
use super::machines::MState;
use super::wire::ulid;
use super::{EdgeRequest, Shared};

/// How long the edge retries a machine that is starting (reference §6: it retries an
/// unhealthy forced target, up to 90 times for HTTP, then gives up with no fallback).
const RETRY_WINDOW: Duration = Duration::from_secs(15);

/// A request head larger than this is refused.
const HEAD_LIMIT_BYTES: usize = 64 * 1024;

/// Why the edge answered itself; the status the client sees is UNVERIFIED (reference §6), so
/// 503 for "no candidate machine" (PR02/PR03/PR04/PM08) and 502 when the machine refuses the
/// connection (a service pointing at the wrong port).
type Refusal = (u16, String);

/// Accepts connections on `listener`; each link is a task in `shared.links`, so a test can
/// cut them all.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((inbound, peer)) = listener.accept().await else {
            continue;
        };
        let mut links = shared.links.lock().unwrap();
        while links.try_join_next().is_some() {}
        links.spawn(link(shared.clone(), inbound, peer));
    }
}

async fn link(shared: Arc<Shared>, mut inbound: TcpStream, peer: SocketAddr) {
    let _ = inbound.set_nodelay(true);
    let Some((head, rest)) = read_head(&mut inbound).await else {
        return;
    };
    let Some(head) = Head::parse(&head) else {
        return refuse(&mut inbound, (400, "malformed request".into())).await;
    };
    let forced = head.header("fly-force-instance-id").map(str::to_string);
    let target = match &forced {
        Some(id) => forced_target(&shared, id).await,
        None => any_started(&shared),
    };
    let mut record = EdgeRequest {
        method: head.method.clone(),
        path: head.path.clone(),
        headers: head.headers.clone(),
        forced: forced.clone(),
        routed_to: None,
        status: None,
    };
    let result = match target {
        Ok((id, addr)) => match TcpStream::connect(addr).await {
            Ok(outbound) => {
                record.routed_to = Some(id);
                Ok(outbound)
            }
            Err(e) => Err((502, format!("PC01 machine refused the connection: {e}"))),
        },
        Err(refusal) => Err(refusal),
    };
    record.status = result.as_ref().err().map(|(status, _)| *status);
    shared.edge_requests.lock().unwrap().push(record);
    match result {
        Ok(mut outbound) => {
            let _ = outbound.set_nodelay(true);
            let replay = head.rewrite(peer, &shared.default_region);
            if outbound.write_all(&replay).await.is_err()
                || outbound.write_all(&rest).await.is_err()
            {
                return;
            }
            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
        }
        Err(refusal) => refuse(&mut inbound, refusal).await,
    }
}

/// The forced machine, once it is started (reference §6): unknown, destroyed or not
/// startable → refused with no fallback; stopped with `autostart` → started first (§8.11).
async fn forced_target(shared: &Arc<Shared>, id: &str) -> Result<(String, SocketAddr), Refusal> {
    let mut changes = shared.changed.subscribe();
    let deadline = tokio::time::Instant::now() + RETRY_WINDOW;
    loop {
        if let Some(found) = look(shared, id)? {
            return Ok((id.to_string(), found));
        }
        if tokio::time::timeout_at(deadline, changes.changed())
            .await
            .is_err()
        {
            return Err((
                503,
                format!("PR04 no candidate machines found after retries ({id})"),
            ));
        }
    }
}

/// One look at machine `id`: its runtime's address, `None` to wait for it, or a refusal.
fn look(shared: &Arc<Shared>, id: &str) -> Result<Option<SocketAddr>, Refusal> {
    let mut machines = shared.machines.lock().unwrap();
    let refused = |code: &str, why: &str| Err((503, format!("{code} {why} ({id})")));
    let Some(m) = machines.iter_mut().find(|m| m.id == id) else {
        return refused("PR02", "machine not found");
    };
    // Reference §6: unreachable without services; §2.1 skip_service_registration cordons it.
    if m.cordoned {
        return refused("PR03", "machine is cordoned");
    }
    let Some(port) = m.http_service_port(shared.strict) else {
        return refused("PR03", "machine has no http service on port 443");
    };
    if port != m.runtime_port() {
        let why = format!(
            "service internal_port {port}, but the runtime listens on {}",
            m.runtime_port()
        );
        return Err((502, format!("PC01 {why} ({id})")));
    }
    match m.state {
        MState::Started => Ok(m.runtime.as_ref().map(|rt| rt.addr)),
        MState::Starting => Ok(None),
        MState::Stopped | MState::Created if m.autostart() && !m.stuck => {
            lifecycle::launch(shared, m);
            drop(machines);
            shared.notify();
            Ok(None)
        }
        MState::Stopped | MState::Created => {
            refused("PM06", "machine is stopped and autostart is off")
        }
        state => refused(
            "PM08",
            &format!("machine is {}, not startable", state.as_str()),
        ),
    }
}

/// Without the header Fly balances over the app's started machines (reference §6); the fake
/// takes them in turn, so a client that forgets the header lands on the wrong session.
fn any_started(shared: &Shared) -> Result<(String, SocketAddr), Refusal> {
    let machines = shared.machines.lock().unwrap();
    let candidates: Vec<(String, SocketAddr)> = machines
        .iter()
        .filter(|m| !m.cordoned && m.state == MState::Started)
        .filter(|m| m.http_service_port(shared.strict) == Some(m.runtime_port()))
        .filter_map(|m| Some((m.id.clone(), m.runtime.as_ref()?.addr)))
        .collect();
    if candidates.is_empty() {
        return Err((503, "PR04 no candidate machines found".into()));
    }
    let turn = shared
        .round_robin
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(candidates[turn % candidates.len()].clone())
}

/// Reads up to the end of the request head; returns the head and whatever came after it.
async fn read_head(inbound: &mut TcpStream) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = async {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let rest = buf.split_off(end + 4);
                return Some((std::mem::take(&mut buf), rest));
            }
            if buf.len() > HEAD_LIMIT_BYTES {
                return None;
            }
            let n = inbound.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .ok()
        .flatten()
}

async fn refuse(inbound: &mut TcpStream, (status, message): Refusal) {
    let reason = match status {
        400 => "Bad Request",
        502 => "Bad Gateway",
        _ => "Service Unavailable",
    };
    let body = format!("fly-proxy: {message}\n");
    let answer = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\
         connection: close\r\nserver: Fly/fake\r\nfly-request-id: {}\r\n\r\n{body}",
        body.len(),
        ulid().to_lowercase()
    );
    let _ = inbound.write_all(answer.as_bytes()).await;
    let _ = inbound.shutdown().await;
}

/// A request head, parsed just enough to route and rewrite it.
struct Head {
    request_line: String,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn parse(raw: &[u8]) -> Option<Head> {
        let text = std::str::from_utf8(raw).ok()?;
        let mut lines = text.split("\r\n").filter(|l| !l.is_empty());
        let request_line = lines.next()?.to_string();
        let mut parts = request_line.split(' ');
        let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
        let headers = lines
            .map(|l| {
                let (name, value) = l.split_once(':')?;
                Some((name.trim().to_ascii_lowercase(), value.trim().to_string()))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Head {
            request_line,
            method,
            path,
            headers,
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The head as the machine sees it: every header kept (`Authorization` included,
    /// §8.11), Fly's own added; a plain request gets `connection: close`, so each request
    /// on a client's connection is routed afresh, as Fly routes per request.
    fn rewrite(&self, peer: SocketAddr, region: &str) -> Vec<u8> {
        let upgrade = self.header("connection").is_some_and(|c| {
            c.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        });
        let mut out = format!("{}\r\n", self.request_line);
        for (name, value) in &self.headers {
            if !upgrade && matches!(name.as_str(), "connection" | "keep-alive") {
                continue;
            }
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        let ip = peer.ip();
        out.push_str(&format!(
            "fly-client-ip: {ip}\r\nx-forwarded-for: {ip}\r\nx-forwarded-proto: https\r\n\
             x-forwarded-port: 443\r\nfly-forwarded-port: 443\r\nfly-region: {region}\r\n\
             fly-request-id: {}\r\nvia: 1.1 fly.io\r\n",
            ulid().to_lowercase()
        ));
        if !upgrade {
            out.push_str("connection: close\r\n");
        }
        out.push_str("\r\n");
        out.into_bytes()
    }
}
