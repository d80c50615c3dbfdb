//! A TCP proxy from a loopback port to a target whose links can be cut (a reset, or a FIN
//! each way) or stalled (a silent drop: nothing forwarded, nothing closed, as when packets are
//! blackholed). It can also cut on a schedule of its own ([`Schedule`]): at random times, each
//! cut inside bytes on their way from the target, new links refused for an outage after it,
//! and the time each resume took.

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{DEADLINE, random_below};
use catty::protocol::DEAD_LINK;

/// How a link is cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CutKind {
    /// A reset each way (`SO_LINGER` 0): what was in flight is gone, the peers see an error.
    Reset,
    /// A FIN each way: the peers read what was forwarded, then the end of the stream.
    Fin,
}

pub struct Proxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    _accept: catty::task::AbortOnDrop<()>,
}

/// What the accept loop and the proxy's owner share. Links get clones of the channels, never
/// this, so dropping the proxy drops `links` and ends them.
struct Shared {
    links: Mutex<JoinSet<()>>,
    /// Each send cuts every link open before it, in the way sent.
    cut: watch::Sender<CutKind>,
    stalled: watch::Sender<bool>,
    /// A cut waiting for the next bytes from the target, to let a random part of them through.
    armed: Arc<Mutex<Option<CutKind>>>,
    /// New links are refused (accepted and reset) until then.
    closed_until: Mutex<Option<Instant>>,
    /// When the last link began carrying the target's bytes (its first one written on).
    flowing: watch::Sender<Option<Instant>>,
    refused: AtomicU64,
}

/// What one link needs of the proxy.
#[derive(Clone)]
struct LinkCtx {
    stalled: watch::Receiver<bool>,
    armed: Arc<Mutex<Option<CutKind>>>,
    cut: watch::Sender<CutKind>,
    flowing: watch::Sender<Option<Instant>>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            links: Mutex::new(JoinSet::new()),
            cut: watch::Sender::new(CutKind::Reset),
            stalled: watch::Sender::new(false),
            armed: Arc::new(Mutex::new(None)),
            closed_until: Mutex::new(None),
            flowing: watch::Sender::new(None),
            refused: AtomicU64::new(0),
        });
        let accept = tokio::spawn(accept(listener, target, shared.clone()));
        Proxy {
            addr,
            shared,
            _accept: catty::task::AbortOnDrop(accept),
        }
    }

    /// Drops every open link at once with a reset, as a network failure would.
    pub fn cut(&self) {
        self.cut_as(CutKind::Reset);
    }

    /// Cuts every open link in the way given; links opened afterwards are not touched.
    pub fn cut_as(&self, kind: CutKind) {
        self.shared.cut.send_replace(kind);
    }

    /// Stops forwarding on every link, open or new, without closing any: bytes wait in the
    /// sockets' buffers as if lost on the way, until [`Proxy::resume`].
    pub fn stall(&self) {
        self.shared.stalled.send_replace(true);
    }

    pub fn resume(&self) {
        self.shared.stalled.send_replace(false);
    }

    /// New links opened this long from now are refused: accepted and reset at once.
    fn refuse_for(&self, outage: Duration) {
        *self.shared.closed_until.lock().unwrap() = Some(Instant::now() + outage);
    }

    /// Links refused so far.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }

    /// Runs `schedule` (see there) to its end; returns what each cut was and how long the
    /// stream took to come back after it, or why it could not go on: no link carried the
    /// target's bytes within [`DEADLINE`] (plus the outage).
    pub async fn cut_on_schedule(&self, schedule: &Schedule) -> Result<Vec<Cut>, String> {
        let mut flowing = self.shared.flowing.subscribe();
        let mut cuts_seen = self.shared.cut.subscribe();
        let mut cuts = Vec::with_capacity(schedule.cuts);
        let mut since = wait_for_flow(&mut flowing, Duration::ZERO).await?;
        for _ in 0..schedule.cuts {
            let span = schedule.life.end - schedule.life.start;
            let extra = random_below(span.as_micros() as u64 + 1);
            tokio::time::sleep_until(
                (since + schedule.life.start + Duration::from_micros(extra)).into(),
            )
            .await;
            let kind = [CutKind::Reset, CutKind::Fin][random_below(2) as usize];
            let inside = self.cut_inside_next_bytes(kind, &mut cuts_seen).await;
            let cut = Instant::now();
            self.refuse_for(schedule.outage);
            let began = wait_for_flow(&mut flowing, schedule.outage).await?;
            cuts.push(Cut {
                kind,
                inside,
                life: cut - since,
                resumed: began - cut,
            });
            since = began;
        }
        Ok(cuts)
    }

    /// Cuts inside the next bytes from the target (a random part of them let through), or
    /// as things are when none come within [`ARMED_MAX`]; returns whether inside. New links
    /// are refused meanwhile, and the next one to carry bytes is timed from here.
    async fn cut_inside_next_bytes(
        &self,
        kind: CutKind,
        cuts_seen: &mut watch::Receiver<CutKind>,
    ) -> bool {
        self.refuse_for(ARMED_MAX + DEADLINE);
        self.shared.flowing.send_replace(None);
        cuts_seen.mark_unchanged();
        *self.shared.armed.lock().unwrap() = Some(kind);
        if tokio::time::timeout(ARMED_MAX, cuts_seen.changed())
            .await
            .is_ok()
        {
            return true;
        }
        if self.shared.armed.lock().unwrap().take().is_some() {
            self.cut_as(kind);
        }
        false
    }
}

/// How long an armed cut waits for bytes from the target before it cuts as things are. A
/// client pings every second and the runtime answers, so bytes come well within it.
const ARMED_MAX: Duration = Duration::from_secs(3);

/// Waits (at most an outage and [`DEADLINE`]) for a link to carry the target's bytes; returns
/// when it began.
async fn wait_for_flow(
    flowing: &mut watch::Receiver<Option<Instant>>,
    outage: Duration,
) -> Result<Instant, String> {
    let within = DEADLINE + outage;
    match tokio::time::timeout(within, flowing.wait_for(Option::is_some)).await {
        Ok(Ok(began)) => Ok(began.expect("waited for")),
        _ => Err(format!("no link carried bytes within {within:?}")),
    }
}

/// Cuts the proxy makes on its own, one at a time: it waits for a link to carry the target's
/// bytes, and after a random life cuts it (a reset or a FIN, at random) inside the next bytes
/// from the target, so a random part of them gets through (a frame split anywhere); then it
/// refuses new links for the outage, and times the resume: from the cut to the first byte
/// the target sends on the next link.
pub struct Schedule {
    pub cuts: usize,
    /// How long a link carries the stream before its cut: uniform over this range.
    pub life: Range<Duration>,
    pub outage: Duration,
}

/// One cut of a [`Schedule`].
#[derive(Clone, Copy, Debug)]
pub struct Cut {
    pub kind: CutKind,
    /// Whether it fell inside bytes from the target (else no bytes came in time).
    pub inside: bool,
    /// How long the link had carried the stream.
    pub life: Duration,
    /// From the cut to the first byte from the target on the next link.
    pub resumed: Duration,
}

async fn accept(listener: TcpListener, target: SocketAddr, shared: Arc<Shared>) {
    let ctx = LinkCtx {
        stalled: shared.stalled.subscribe(),
        armed: shared.armed.clone(),
        cut: shared.cut.clone(),
        flowing: shared.flowing.clone(),
    };
    while let Ok((inbound, _)) = listener.accept().await {
        let closed_until = *shared.closed_until.lock().unwrap();
        if closed_until.is_some_and(|until| Instant::now() < until) {
            shared.refused.fetch_add(1, Ordering::Relaxed);
            let _ = inbound.set_zero_linger();
            continue;
        }
        let Ok(outbound) = TcpStream::connect(target).await else {
            continue;
        };
        // Only cuts from now on concern this link.
        let cut = shared.cut.subscribe();
        let mut links = shared.links.lock().unwrap();
        while links.try_join_next().is_some() {}
        links.spawn(link(inbound, outbound, cut, ctx.clone()));
    }
}

/// Forwards both ways until both ends are done or a cut comes.
async fn link(
    mut inbound: TcpStream,
    mut outbound: TcpStream,
    mut cut: watch::Receiver<CutKind>,
    ctx: LinkCtx,
) {
    let kind = {
        let (in_read, in_write) = inbound.split();
        let (out_read, out_write) = outbound.split();
        let up = forward(in_read, out_write, &ctx, false);
        let down = forward(out_read, in_write, &ctx, true);
        tokio::select! {
            _ = async { tokio::join!(up, down) } => None,
            changed = cut.changed() => changed.ok().map(|()| *cut.borrow()),
        }
    };
    match kind {
        None => {}
        Some(CutKind::Reset) => {
            let _ = inbound.set_zero_linger();
            let _ = outbound.set_zero_linger();
        }
        Some(CutKind::Fin) => {
            let _ = inbound.shutdown().await;
            let _ = outbound.shutdown().await;
            // Until each peer closes its side too, so neither sees a reset after the FIN.
            let drained = async { tokio::join!(drain(&mut inbound), drain(&mut outbound)) };
            let _ = tokio::time::timeout(DEAD_LINK + Duration::from_secs(2), drained).await;
        }
    }
}

/// Copies one direction of a link, holding bytes back while the proxy is stalled. From the
/// target (`down`), an armed cut lets a random part of the next bytes through, then cuts.
async fn forward(mut from: ReadHalf<'_>, mut to: WriteHalf<'_>, ctx: &LinkCtx, down: bool) {
    let mut buf = vec![0u8; 64 * 1024];
    let flowing = |stalled: &watch::Receiver<bool>| {
        let mut stalled = stalled.clone();
        async move { stalled.wait_for(|s| !*s).await.is_ok() }
    };
    let mut first = down;
    loop {
        if !flowing(&ctx.stalled).await {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let armed = if down {
            ctx.armed.lock().unwrap().take()
        } else {
            None
        };
        if let Some(kind) = armed {
            let part = random_below(n as u64 + 1) as usize;
            let _ = to.write_all(&buf[..part]).await;
            ctx.cut.send_replace(kind);
            // The link's own task carries the cut out.
            return std::future::pending().await;
        }
        if !flowing(&ctx.stalled).await || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
        if std::mem::take(&mut first) {
            ctx.flowing.send_replace(Some(Instant::now()));
        }
    }
    let _ = to.shutdown().await;
}

/// Reads and drops what a peer still sends, until it closes.
async fn drain(stream: &mut TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(1..) = stream.read(&mut buf).await {}
}
