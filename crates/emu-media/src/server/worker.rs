//! A worker: one UDP socket, one I/O task (`io.rs`) and one sans-IO [`State`] behind a short
//! lock. Everything the state queues (datagrams, events, released TURN users) is carried out
//! here, after each batch of work and after each API call.

use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::net::UdpSocket;
use tokio::sync::{Notify, mpsc};

use crate::MediaEvent;
use crate::turn::TurnRelay;

use super::state::State;

pub(super) struct Worker {
    pub(super) state: Mutex<State>,
    /// Wakes the I/O task: the API changed timers or queued work.
    pub(super) wake: Notify,
    pub(super) socket: Arc<UdpSocket>,
    pub(super) events: mpsc::Sender<MediaEvent>,
    pub(super) turn: Option<Arc<TurnRelay>>,
    pub(super) local_addr: SocketAddr,
    pub(super) cand_addr: SocketAddr,
}

impl Worker {
    /// Runs `f` on the state, carries out what it queued, and wakes the I/O task (its timers
    /// may have changed).
    pub(super) fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut st = self.state.lock();
        let r = f(&mut st);
        self.flush(&mut st);
        drop(st);
        self.wake.notify_one();
        r
    }

    /// Sends the queued datagrams (sendmmsg), hands the events to the call driver and forgets
    /// released TURN users.
    pub(super) fn flush(&self, st: &mut State) {
        if !st.out.is_empty() {
            let f = st.out.flush(&*self.socket);
            st.counters.send_errors += f.failed as u64;
        }
        for e in st.events.drain(..) {
            if self.events.try_send(e).is_err() {
                st.counters.events_dropped += 1;
            }
        }
        if let Some(turn) = &self.turn {
            for user in st.turn_released.drain(..) {
                turn.remove_user(&user);
            }
        } else {
            st.turn_released.clear();
        }
    }
}
