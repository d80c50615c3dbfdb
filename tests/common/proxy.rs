//! A TCP proxy from a loopback port to a target whose links can be cut (as a reset would) or
//! stalled (a silent drop: nothing forwarded, nothing closed, as when packets are blackholed).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

pub struct Proxy {
    pub addr: SocketAddr,
    links: Arc<Mutex<JoinSet<()>>>,
    stalled: watch::Sender<bool>,
    _accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let links = Arc::new(Mutex::new(JoinSet::new()));
        let stalled = watch::Sender::new(false);
        let accept_links = links.clone();
        let accept_stalled = stalled.clone();
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = TcpStream::connect(target).await else {
                    continue;
                };
                let (in_read, in_write) = inbound.into_split();
                let (out_read, out_write) = outbound.into_split();
                let (up, down) = (accept_stalled.subscribe(), accept_stalled.subscribe());
                accept_links.lock().unwrap().spawn(async move {
                    tokio::join!(
                        forward(in_read, out_write, up),
                        forward(out_read, in_write, down)
                    );
                });
            }
        });
        Proxy {
            addr,
            links,
            stalled,
            _accept: accept,
        }
    }

    /// Drops every open link at once, as a network failure would.
    pub fn cut(&self) {
        self.links.lock().unwrap().abort_all();
    }

    /// Stops forwarding on every link, open or new, without closing any: bytes wait in the
    /// sockets' buffers as if lost on the way, until [`Proxy::resume`].
    pub fn stall(&self) {
        self.stalled.send_replace(true);
    }

    pub fn resume(&self) {
        self.stalled.send_replace(false);
    }
}

/// Copies one direction of a link, holding bytes back while the proxy is stalled.
async fn forward(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, stalled: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 64 * 1024];
    let flowing = |stalled: &watch::Receiver<bool>| {
        let mut stalled = stalled.clone();
        async move { stalled.wait_for(|s| !*s).await.is_ok() }
    };
    loop {
        if !flowing(&stalled).await {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if !flowing(&stalled).await || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
    let _ = to.shutdown().await;
}
