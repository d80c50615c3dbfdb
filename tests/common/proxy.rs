//! A TCP proxy from a loopback port to a target whose links can be cut (a reset, or a FIN
//! each way) or stalled (a silent drop: nothing forwarded, nothing closed, as when packets are
//! blackholed). It can also cut on a schedule of its own ([`Schedule`]): a slow link that
//! is always busy, cut at random while the stream flows, refused for an outage after each
//! cut, with the time each resume took.

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
    /// Bytes a second each link carries from the target; 0: as fast as they come.
    rate: Arc<AtomicU64>,
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
    rate: Arc<AtomicU64>,
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
            rate: Arc::new(AtomicU64::new(0)),
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

    /// New links opened this long from now are refused: accepted and reset at once, as a
    /// peer that is not there (yet) would.
    fn refuse_for(&self, outage: Duration) {
        *self.shared.closed_until.lock().unwrap() = Some(Instant::now() + outage);
    }

    /// Links refused so far.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }

    /// Runs `schedule` (see there) to its end; returns what each cut was and how long the
    /// stream took to come back after it, or why it could not go on: no link carried the
    /// target's bytes within [`DEADLINE`] (plus the outage). The rate holds from the call on,
    /// so links opened before the returned future runs are slow too.
    pub fn cut_on_schedule(
        &self,
        schedule: &Schedule,
    ) -> impl Future<Output = Result<Vec<Cut>, String>> {
        self.shared
            .rate
            .store(schedule.rate_bytes_per_sec, Ordering::Relaxed);
        let mut flowing = self.shared.flowing.subscribe();
        async move {
            let cuts = self.run_schedule(schedule, &mut flowing).await;
            self.shared.rate.store(0, Ordering::Relaxed);
            cuts
        }
    }

    async fn run_schedule(
        &self,
        schedule: &Schedule,
        flowing: &mut watch::Receiver<Option<Instant>>,
    ) -> Result<Vec<Cut>, String> {
        let mut cuts = Vec::with_capacity(schedule.cuts);
        let mut since = wait_for_flow(flowing, Duration::ZERO).await?;
        for _ in 0..schedule.cuts {
            let span = schedule.life.end - schedule.life.start;
            let extra = random_below(span.as_micros() as u64 + 1);
            let life = schedule.life.start + Duration::from_micros(extra);
            tokio::time::sleep_until((since + life).into()).await;
            let kind = [CutKind::Reset, CutKind::Fin][random_below(2) as usize];
            // The way is closed first, so the client's next dial meets the outage.
            self.refuse_for(schedule.outage);
            self.shared.flowing.send_replace(None);
            self.cut_as(kind);
            let cut = Instant::now();
            let began = wait_for_flow(flowing, schedule.outage).await?;
            cuts.push(Cut {
                kind,
                life: cut - since,
                resumed: began - cut,
            });
            since = began;
        }
        Ok(cuts)
    }
}

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
/// bytes, cuts it (a reset or a FIN, at random) after a random life, refuses new links for
/// the outage, and times the resume: from the cut to the first byte the target sends on the
/// next link. While cuts remain, each link carries the target's bytes at a set rate, so it is
/// busy (full buffers, frames split anywhere) whenever a cut comes; then at full speed.
pub struct Schedule {
    pub cuts: usize,
    /// How long a link carries the stream before its cut: uniform over this range.
    pub life: Range<Duration>,
    pub outage: Duration,
    pub rate_bytes_per_sec: u64,
}

/// One cut of a [`Schedule`].
#[derive(Clone, Copy, Debug)]
pub struct Cut {
    pub kind: CutKind,
    /// How long the link had carried the stream.
    pub life: Duration,
    /// From the cut to the first byte from the target on the next link.
    pub resumed: Duration,
}

async fn accept(listener: TcpListener, target: SocketAddr, shared: Arc<Shared>) {
    let ctx = LinkCtx {
        stalled: shared.stalled.subscribe(),
        rate: shared.rate.clone(),
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
/// target (`down`), at the proxy's rate when one is set, in reads of random size.
async fn forward(mut from: ReadHalf<'_>, mut to: WriteHalf<'_>, ctx: &LinkCtx, down: bool) {
    let mut buf = vec![0u8; 64 * 1024];
    let flowing = |stalled: &watch::Receiver<bool>| {
        let mut stalled = stalled.clone();
        async move { stalled.wait_for(|s| !*s).await.is_ok() }
    };
    let mut first = down;
    let mut due = tokio::time::Instant::now();
    loop {
        if !flowing(&ctx.stalled).await {
            return;
        }
        let rate = if down {
            ctx.rate.load(Ordering::Relaxed)
        } else {
            0
        };
        let want = match rate {
            0 => buf.len(),
            // About 50 writes a second, each of a random size.
            rate => 1 + random_below((rate / 25).clamp(512, buf.len() as u64)) as usize,
        };
        let n = match from.read(&mut buf[..want]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if !flowing(&ctx.stalled).await || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
        if std::mem::take(&mut first) {
            ctx.flowing.send_replace(Some(Instant::now()));
        }
        if rate > 0 {
            let now = tokio::time::Instant::now();
            due = due.max(now) + Duration::from_secs_f64(n as f64 / rate as f64);
            tokio::time::sleep_until(due).await;
        }
    }
    let _ = to.shutdown().await;
}

/// Reads and drops what a peer still sends, until it closes.
async fn drain(stream: &mut TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(1..) = stream.read(&mut buf).await {}
}
