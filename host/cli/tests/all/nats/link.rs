//! A TCP link between a client and the server that the test can cut: bytes stop flowing
//! both ways while the connections stay open, as in a network partition, where nothing
//! tells either side that a request or its reply was lost.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Whether bytes flow, and which generation of connections may live (a heal ends every
/// connection of the generation before it).
#[derive(Clone, Copy)]
struct State {
    cut: bool,
    generation: u64,
}

/// Forwards every connection made to [`CuttableLink::url`] to the server.
pub struct CuttableLink {
    addr: SocketAddr,
    state: watch::Sender<State>,
    accept: tokio::task::JoinHandle<()>,
}

impl CuttableLink {
    pub async fn to(server: SocketAddr) -> CuttableLink {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind link");
        let addr = listener.local_addr().expect("link address");
        let (state, _) = watch::channel(State {
            cut: false,
            generation: 0,
        });
        let states = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(upstream) = TcpStream::connect(server).await else {
                    continue;
                };
                let generation = states.borrow().generation;
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = upstream.into_split();
                tokio::spawn(pump(
                    client_read,
                    server_write,
                    states.subscribe(),
                    generation,
                ));
                tokio::spawn(pump(
                    server_read,
                    client_write,
                    states.subscribe(),
                    generation,
                ));
            }
        });
        CuttableLink {
            addr,
            state,
            accept,
        }
    }

    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    /// From now on every byte either side sends is dropped.
    pub fn cut(&self) {
        self.state.send_modify(|state| state.cut = true);
    }

    /// Closes every connection open now (its peers see the link go down) and lets bytes
    /// flow on new ones.
    pub fn heal(&self) {
        self.state.send_modify(|state| {
            state.cut = false;
            state.generation += 1;
        });
    }
}

impl Drop for CuttableLink {
    fn drop(&mut self) {
        self.accept.abort();
        self.heal();
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut state: watch::Receiver<State>,
    generation: u64,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            read = from.read(&mut buf) => {
                let n = match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let now = *state.borrow();
                if now.generation != generation {
                    return;
                }
                if !now.cut && to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            changed = state.changed() => {
                if changed.is_err() || state.borrow().generation != generation {
                    return;
                }
            }
        }
    }
}
