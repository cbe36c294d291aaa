//! The embedded TURN relay (RFC 5766, UDP), webrtc-rs's `turn` server with long-term
//! credentials minted per joinChannel. The Web SDK's default mode (sigv 1) gathers only relay
//! candidates (docs/protocol.md#sigv-1), so without this no browser call connects.
//!
//! Allocations relay from `relay_ip` (a fresh UDP port per allocation) to any peer, loopback
//! included: the media server listens on 127.0.0.1 too.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use turn::auth::{AuthHandler, generate_auth_key};
use turn::relay::relay_static::RelayAddressGeneratorStatic;
use turn::server::Server;
use turn::server::config::{ConnConfig, ServerConfig};
use webrtc_util::vnet::net::Net;

/// Long-term credentials: username → (password, expiry). The key, MD5(username:realm:password),
/// is derived when the relay asks for it: most legs (every one that connects without the relay)
/// never use their credentials, and an MD5 per joinChannel showed in the per-call profile.
pub(crate) struct Credentials {
    realm: String,
    users: DashMap<String, User>,
    pub(crate) rejected: std::sync::atomic::AtomicU64,
}

struct User {
    password: String,
    expires: Instant,
    /// A request authenticated with these credentials: the user may hold allocations.
    used: bool,
}

impl Credentials {
    pub(crate) fn new(realm: &str) -> Credentials {
        Credentials { realm: realm.to_string(), users: DashMap::new(), rejected: Default::default() }
    }

    /// Adds a user (every joinChannel mints a fresh username), valid for `ttl`.
    pub(crate) fn add(&self, username: &str, password: &str, ttl: Duration) {
        let user = User { password: password.to_string(), expires: Instant::now() + ttl, used: false };
        self.users.insert(username.to_string(), user);
    }
}

impl AuthHandler for Credentials {
    fn auth_handle(&self, username: &str, _realm: &str, src_addr: SocketAddr) -> Result<Vec<u8>, turn::Error> {
        match self.users.get_mut(username) {
            Some(mut user) if user.expires > Instant::now() => {
                user.used = true;
                Ok(generate_auth_key(username, &self.realm, &user.password))
            }
            found => {
                self.rejected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let why = if found.is_some() { "expired" } else { "unknown" };
                tracing::info!(username, %src_addr, "TURN request with {why} credentials refused");
                Err(turn::Error::Other(format!("{why} username")))
            }
        }
    }
}

/// A running TURN server.
pub struct TurnRelay {
    server: Server,
    creds: Arc<Credentials>,
    addr: SocketAddr,
}

impl TurnRelay {
    /// Listens on `bind:port` (UDP; 0 = a free port); relays from `relay_ip`.
    pub async fn start(bind: IpAddr, port: u16, relay_ip: IpAddr, realm: &str) -> anyhow::Result<Self> {
        let socket = tokio::net::UdpSocket::bind(SocketAddr::new(bind, port))
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {bind}:{port} (turn): {e}"))?;
        let addr = socket.local_addr()?;
        let creds = Arc::new(Credentials::new(realm));
        let server = Server::new(ServerConfig {
            conn_configs: vec![ConnConfig {
                conn: Arc::new(socket),
                relay_addr_generator: Box::new(RelayAddressGeneratorStatic {
                    relay_address: relay_ip,
                    address: bind.to_string(),
                    net: Arc::new(Net::new(None)),
                }),
            }],
            realm: realm.to_string(),
            auth_handler: creds.clone(),
            channel_bind_timeout: Duration::from_secs(0),
            alloc_close_notify: None,
        })
        .await
        .map_err(|e| anyhow::anyhow!("turn server: {e}"))?;
        Ok(TurnRelay { server, creds, addr })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn realm(&self) -> &str {
        &self.creds.realm
    }

    pub fn add_user(&self, username: &str, password: &str, ttl: Duration) {
        self.creds.add(username, password, ttl);
    }

    /// Forgets the credentials and closes the user's allocations (their relay ports).
    pub fn remove_user(self: &Arc<Self>, username: &str) {
        // Credentials never used hold no allocation: nothing to close (most legs never relay).
        let used = self.creds.users.remove(username).is_some_and(|(_, u)| u.used);
        if used && let Ok(rt) = tokio::runtime::Handle::try_current() {
            let me = self.clone();
            let name = username.to_string();
            rt.spawn(async move {
                let _ = me.server.delete_allocations_by_username(name).await;
            });
        }
    }

    /// Users with credentials (not yet removed).
    pub fn users(&self) -> usize {
        self.creds.users.len()
    }

    /// TURN requests refused for bad credentials so far.
    pub fn rejected(&self) -> u64 {
        self.creds.rejected.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Open allocations (relay ports).
    pub async fn allocations(&self) -> usize {
        self.server.get_allocations_info(None).await.map(|m| m.len()).unwrap_or(0)
    }

    pub async fn close(&self) {
        let _ = self.server.close().await;
    }
}
