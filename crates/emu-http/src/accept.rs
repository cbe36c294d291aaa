//! Accepting TCP connections when the process runs out of file descriptors
//! (docs/configuration.md#input-limits). `accept` then fails with EMFILE/ENFILE and the connection
//! stays in the kernel's backlog, its client waiting for an answer that never comes. Instead, one
//! descriptor is kept in reserve: on such a failure it is given up, the waiting connection is
//! accepted and closed at once (the client sees the connection closed, not a hang), and the
//! reserve is taken again. Service resumes by itself as soon as descriptors are free again.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};

/// A listener's accept loop state: the reserve descriptor and when the last shed was logged.
pub struct Acceptor {
    listener: TcpListener,
    reserve: Option<std::fs::File>,
    last_warning: Option<Instant>,
    /// Connections closed at once for want of descriptors, since the start.
    pub shed: u64,
}

fn reserve() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}

/// EMFILE (this process's limit) and ENFILE (the system's): 24 and 23 on Linux and the BSDs.
const EMFILE: i32 = 24;
const ENFILE: i32 = 23;

fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(EMFILE | ENFILE))
}

impl Acceptor {
    pub fn new(listener: TcpListener) -> Self {
        Acceptor { listener, reserve: reserve(), last_warning: None, shed: 0 }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The next connection. Out of descriptors, waiting connections are closed at once until one
    /// can be served; any other error waits a little (never a busy loop).
    pub async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok(c) => {
                    if self.reserve.is_none() {
                        self.reserve = reserve();
                    }
                    return c;
                }
                Err(e) if out_of_descriptors(&e) => {
                    self.shed_one(&e).await;
                }
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    async fn shed_one(&mut self, e: &io::Error) {
        let now = Instant::now();
        if self.last_warning.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(5)) {
            self.last_warning = Some(now);
            tracing::warn!(
                addr = ?self.listener.local_addr().ok(),
                shed_so_far = self.shed,
                "out of file descriptors ({e}): closing new connections at once until some are free"
            );
        }
        if self.reserve.take().is_some()
            && let Ok((conn, _)) = self.listener.accept().await
        {
            drop(conn);
            self.shed += 1;
        }
        self.reserve = reserve();
        // Let connections being served finish and free their descriptors.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
