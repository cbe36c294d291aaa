//! The I/O loop of one worker: batched receives (recvmmsg) fed to its sans-IO `State` with the
//! time they arrived, flushing what the state queued (`Worker::flush`), and sleeping until the
//! state's next timer.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use crate::udp::RecvBatch;

use super::MediaServer;

/// Datagrams taken from the socket per system call, and per turn of the I/O task (the timers
/// and the queued sends are served between turns).
const RECV_BATCH: usize = 64;
const RECV_BATCHES_PER_TURN: usize = 4;
/// Socket buffers asked for: the default receive buffer (208 KiB, ~250 datagrams) overflows
/// while the I/O task synthesizes a few hundred phones' frames.
pub(super) const SOCKET_RECV_BUFFER: usize = 4 << 20;
pub(super) const SOCKET_SEND_BUFFER: usize = 2 << 20;

pub(super) async fn io_loop(server: Arc<MediaServer>, index: usize, mut stop: watch::Receiver<bool>) {
    let server = &server.workers[index];
    let mut batch = RecvBatch::new(RECV_BATCH);
    loop {
        let deadline = {
            let mut st = server.state.lock();
            server.flush(&mut st);
            st.next_deadline(Instant::now())
        };
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            r = server.socket.readable() => {
                if let Err(e) = r {
                    tracing::trace!("media socket: {e}");
                    continue;
                }
                let mut st = server.state.lock();
                for _ in 0..RECV_BATCHES_PER_TURN {
                    match server.socket.try_io(tokio::io::Interest::READABLE, || batch.recv(&*server.socket)) {
                        Ok(n) => {
                            let now = Instant::now();
                            for i in 0..n {
                                let (buf, src, _) = batch.get(i);
                                st.on_packet(buf, src, now);
                            }
                            st.settle(now);
                            // Send what this batch produced before taking the next.
                            server.flush(&mut st);
                            if n < batch.capacity() {
                                break;
                            }
                        }
                        Err(e) => {
                            if e.kind() != std::io::ErrorKind::WouldBlock {
                                tracing::trace!("media socket: {e}");
                            }
                            break;
                        }
                    }
                }
                st.run_due(Instant::now());
            }
            _ = tokio::time::sleep_until(deadline.into()) => server.state.lock().run_due(Instant::now()),
            _ = server.wake.notified() => {}
        }
    }
}
