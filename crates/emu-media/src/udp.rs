//! Batched UDP I/O: many datagrams per system call (`recvmmsg` / `sendmmsg` on Linux; one
//! datagram per call elsewhere), and the socket buffer sizes. No protocol logic: the media
//! server (and the benchmark's clients) decide what to send; this only moves bytes.
//!
//! Optionally the IPv4 destination of received datagrams and the source of sent ones
//! (`IP_PKTINFO`), so that one socket bound to a wildcard address can stand for many local
//! addresses (the benchmark's clients use one socket for hundreds of legs on 127.x.y.z).

use std::io;
use std::net::{IpAddr, SocketAddr};

/// Largest datagram received (longer ones are truncated: more than any media packet).
pub const MAX_DATAGRAM: usize = 2048;

/// Sets the socket's receive and send buffer sizes (bytes), as far as the system allows;
/// returns the sizes granted (Linux reports twice the request, its bookkeeping included).
pub fn set_buffer_sizes(socket: &impl std::os::fd::AsFd, recv: usize, send: usize) -> (usize, usize) {
    let s = socket2::SockRef::from(socket);
    let _ = s.set_recv_buffer_size(recv);
    let _ = s.set_send_buffer_size(send);
    (s.recv_buffer_size().unwrap_or(0), s.send_buffer_size().unwrap_or(0))
}

/// Asks for the destination address of each received datagram (`IP_PKTINFO`), and allows
/// choosing the source address of sent ones. For IPv4 sockets.
#[cfg(target_os = "linux")]
pub fn enable_pktinfo(socket: &impl std::os::fd::AsFd) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a valid fd and a c_int option value of the right size.
    let r = unsafe {
        libc::setsockopt(
            socket.as_fd().as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_PKTINFO,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

#[cfg(not(target_os = "linux"))]
pub fn enable_pktinfo(_socket: &impl std::os::fd::AsFd) -> io::Result<()> {
    Err(io::Error::other("IP_PKTINFO is only supported on Linux"))
}

/// Control-message space per datagram (an `in_pktinfo` needs 32 bytes).
#[cfg(target_os = "linux")]
const CTRL_WORDS: usize = 8;

/// Buffers for receiving up to `capacity` datagrams in one call.
pub struct RecvBatch {
    data: Vec<u8>,
    lens: Vec<usize>,
    from: Vec<SocketAddr>,
    to: Vec<Option<IpAddr>>,
    count: usize,
    #[cfg(target_os = "linux")]
    names: Vec<libc::sockaddr_storage>,
    #[cfg(target_os = "linux")]
    ctrl: Vec<[u64; CTRL_WORDS]>,
    #[cfg(target_os = "linux")]
    iovs: Vec<libc::iovec>,
    #[cfg(target_os = "linux")]
    hdrs: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers in `iovs` / `hdrs` only ever point into this struct's own buffers,
// and are rebuilt before every system call.
unsafe impl Send for RecvBatch {}

impl RecvBatch {
    pub fn new(capacity: usize) -> RecvBatch {
        let capacity = capacity.max(1);
        RecvBatch {
            data: vec![0; capacity * MAX_DATAGRAM],
            lens: vec![0; capacity],
            from: vec![SocketAddr::from(([0, 0, 0, 0], 0)); capacity],
            to: vec![None; capacity],
            count: 0,
            #[cfg(target_os = "linux")]
            // SAFETY: all-zero is a valid sockaddr_storage / iovec / mmsghdr.
            names: vec![unsafe { std::mem::zeroed() }; capacity],
            #[cfg(target_os = "linux")]
            ctrl: vec![[0; CTRL_WORDS]; capacity],
            #[cfg(target_os = "linux")]
            iovs: vec![unsafe { std::mem::zeroed() }; capacity],
            #[cfg(target_os = "linux")]
            hdrs: vec![unsafe { std::mem::zeroed() }; capacity],
        }
    }

    pub fn capacity(&self) -> usize {
        self.lens.len()
    }

    /// Datagrams of the last [`RecvBatch::recv`].
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Datagram `i` of the last receive: (bytes, source, destination IP if `IP_PKTINFO` is on).
    pub fn get(&self, i: usize) -> (&[u8], SocketAddr, Option<IpAddr>) {
        let start = i * MAX_DATAGRAM;
        (&self.data[start..start + self.lens[i]], self.from[i], self.to[i])
    }

    /// Receives what is queued on the (non-blocking) socket, up to the capacity, without
    /// waiting: `WouldBlock` when nothing is.
    #[cfg(target_os = "linux")]
    pub fn recv(&mut self, socket: &impl std::os::fd::AsFd) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        let n = self.capacity();
        for i in 0..n {
            self.iovs[i] =
                libc::iovec { iov_base: self.data[i * MAX_DATAGRAM..].as_mut_ptr().cast(), iov_len: MAX_DATAGRAM };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&mut self.names[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = self.ctrl[i].as_mut_ptr().cast();
            h.msg_controllen = (CTRL_WORDS * 8) as _;
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
        // SAFETY: every header points into buffers owned by self, sized as declared.
        let r = unsafe {
            libc::recvmmsg(
                socket.as_fd().as_raw_fd(),
                self.hdrs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            self.count = 0;
            return Err(io::Error::last_os_error());
        }
        let got = r as usize;
        for i in 0..got {
            self.lens[i] = (self.hdrs[i].msg_len as usize).min(MAX_DATAGRAM);
            self.from[i] = sockaddr_to_std(&self.names[i]).unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
            self.to[i] = pktinfo_dst(&self.hdrs[i].msg_hdr);
        }
        self.count = got;
        Ok(got)
    }

    #[cfg(not(target_os = "linux"))]
    pub fn recv(&mut self, socket: &impl std::os::fd::AsFd) -> io::Result<usize> {
        let s = socket2::SockRef::from(socket);
        let mut got = 0;
        while got < self.capacity() {
            let start = got * MAX_DATAGRAM;
            let buf = &mut self.data[start..start + MAX_DATAGRAM];
            // SAFETY: u8 and MaybeUninit<u8> have the same layout; the bytes are initialized.
            let buf = unsafe { &mut *(buf as *mut [u8] as *mut [std::mem::MaybeUninit<u8>]) };
            match s.recv_from(buf) {
                Ok((n, from)) => {
                    self.lens[got] = n;
                    self.from[got] = from.as_socket().unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
                    self.to[got] = None;
                    got += 1;
                }
                Err(e) if got == 0 => {
                    self.count = 0;
                    return Err(e);
                }
                Err(_) => break,
            }
        }
        self.count = got;
        Ok(got)
    }
}

/// Received datagrams put aside to be handled later, each with a tag (e.g. its leg), in one
/// buffer that keeps its allocation across [`Parked::clear`].
#[derive(Debug)]
pub struct Parked<T> {
    list: Vec<(T, SocketAddr, std::ops::Range<usize>)>,
    bytes: Vec<u8>,
}

impl<T> Default for Parked<T> {
    fn default() -> Self {
        Parked { list: Vec::new(), bytes: Vec::new() }
    }
}

impl<T: Copy> Parked<T> {
    pub fn push(&mut self, tag: T, src: SocketAddr, datagram: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(datagram);
        self.list.push((tag, src, start..self.bytes.len()));
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The datagrams in the order they were parked.
    pub fn iter(&self) -> impl Iterator<Item = (T, SocketAddr, &[u8])> {
        self.list.iter().map(|(tag, src, r)| (*tag, *src, &self.bytes[r.clone()]))
    }

    pub fn clear(&mut self) {
        self.list.clear();
        self.bytes.clear();
    }
}

/// Datagrams waiting to be sent, sent in as few calls as possible by [`SendQueue::flush`].
#[derive(Default)]
pub struct SendQueue {
    items: Vec<(SocketAddr, Option<IpAddr>, Vec<u8>)>,
    /// Buffers of sent datagrams, for [`SendQueue::push_copy`] and [`SendQueue::buffer`].
    spare: Vec<Vec<u8>>,
    /// Datagrams queued since the queue was made.
    queued: u64,
}

/// What a flush did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Flushed {
    pub sent: usize,
    /// Dropped: the socket's send buffer was full, or the system refused the datagram.
    pub failed: usize,
}

impl SendQueue {
    pub fn new() -> SendQueue {
        SendQueue::default()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Datagrams queued since the queue was made (sent or not).
    pub fn queued(&self) -> u64 {
        self.queued
    }

    /// An empty buffer to build a datagram in (a sent one's, when there is one), for
    /// [`SendQueue::push`].
    pub fn buffer(&mut self) -> Vec<u8> {
        let mut v = self.spare.pop().unwrap_or_default();
        v.clear();
        v
    }

    /// Takes every queued datagram out, as (destination, contents), for a transport other than
    /// a socket (the in-memory tests of the media state).
    pub fn take(&mut self) -> Vec<(SocketAddr, Vec<u8>)> {
        self.items.drain(..).map(|(dest, _, contents)| (dest, contents)).collect()
    }

    /// Queues a datagram.
    pub fn push(&mut self, dest: SocketAddr, contents: Vec<u8>) {
        self.queued += 1;
        self.items.push((dest, None, contents));
    }

    /// Queues a datagram from the local IPv4 address `src` (needs [`enable_pktinfo`] and a
    /// socket bound to a wildcard address).
    pub fn push_from(&mut self, src: Option<IpAddr>, dest: SocketAddr, contents: Vec<u8>) {
        self.queued += 1;
        self.items.push((dest, src, contents));
    }

    /// Queues a copy of `contents` (into a reused buffer).
    pub fn push_copy(&mut self, src: Option<IpAddr>, dest: SocketAddr, contents: &[u8]) {
        let mut v = self.buffer();
        v.extend_from_slice(contents);
        self.push_from(src, dest, v);
    }

    /// Sends everything queued without waiting; what the socket does not take is dropped (a
    /// full send buffer drops datagrams, as a router would).
    #[cfg(target_os = "linux")]
    pub fn flush(&mut self, socket: &impl std::os::fd::AsFd) -> Flushed {
        use std::os::fd::AsRawFd;
        const CHUNK: usize = 64;
        let mut out = Flushed::default();
        let fd = socket.as_fd().as_raw_fd();
        // SAFETY: all-zero is valid for these C structs.
        let mut names: [libc::sockaddr_storage; CHUNK] = unsafe { std::mem::zeroed() };
        let mut iovs: [libc::iovec; CHUNK] = unsafe { std::mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; CHUNK] = unsafe { std::mem::zeroed() };
        let mut ctrl = [[0u64; CTRL_WORDS]; CHUNK];
        let mut done = 0;
        while done < self.items.len() {
            let chunk = &self.items[done..(done + CHUNK).min(self.items.len())];
            for (i, (dest, src, data)) in chunk.iter().enumerate() {
                let namelen = std_to_sockaddr(*dest, &mut names[i]);
                iovs[i] = libc::iovec { iov_base: data.as_ptr() as *mut _, iov_len: data.len() };
                let h = &mut hdrs[i].msg_hdr;
                h.msg_name = (&mut names[i] as *mut libc::sockaddr_storage).cast();
                h.msg_namelen = namelen;
                h.msg_iov = &mut iovs[i];
                h.msg_iovlen = 1;
                h.msg_flags = 0;
                match src {
                    Some(IpAddr::V4(ip)) => {
                        h.msg_control = ctrl[i].as_mut_ptr().cast();
                        h.msg_controllen = (CTRL_WORDS * 8) as _;
                        // SAFETY: the control buffer is aligned and large enough for one
                        // in_pktinfo message.
                        unsafe {
                            let c = libc::CMSG_FIRSTHDR(h);
                            (*c).cmsg_level = libc::IPPROTO_IP;
                            (*c).cmsg_type = libc::IP_PKTINFO;
                            (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::in_pktinfo>() as u32) as _;
                            let info = libc::in_pktinfo {
                                ipi_ifindex: 0,
                                ipi_spec_dst: libc::in_addr { s_addr: u32::from(*ip).to_be() },
                                ipi_addr: libc::in_addr { s_addr: 0 },
                            };
                            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast(), info);
                            h.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<libc::in_pktinfo>() as u32) as _;
                        }
                    }
                    _ => {
                        h.msg_control = std::ptr::null_mut();
                        h.msg_controllen = 0;
                    }
                }
            }
            let n = chunk.len();
            // SAFETY: the headers point into `names`, `iovs`, `ctrl` and the queued buffers,
            // all alive for the call.
            let r = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), n as libc::c_uint, libc::MSG_DONTWAIT) };
            if r > 0 {
                out.sent += r as usize;
                done += r as usize;
            } else {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                if e.kind() == io::ErrorKind::WouldBlock {
                    // The send buffer is full: drop the rest.
                    out.failed += self.items.len() - done;
                    break;
                }
                // This datagram was refused; go on with the next.
                tracing::trace!(dest = %self.items[done].0, "media send failed: {e}");
                out.failed += 1;
                done += 1;
            }
        }
        self.recycle();
        out
    }

    #[cfg(not(target_os = "linux"))]
    pub fn flush(&mut self, socket: &impl std::os::fd::AsFd) -> Flushed {
        let s = socket2::SockRef::from(socket);
        let mut out = Flushed::default();
        for (dest, _, data) in &self.items {
            match s.send_to(data, &(*dest).into()) {
                Ok(_) => out.sent += 1,
                Err(_) => out.failed += 1,
            }
        }
        self.recycle();
        out
    }

    fn recycle(&mut self) {
        for (_, _, v) in self.items.drain(..) {
            if self.spare.len() < 256 {
                self.spare.push(v);
            }
        }
    }
}

#[cfg(target_os = "linux")]
fn sockaddr_to_std(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match s.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let a: libc::sockaddr_in = unsafe { std::ptr::read_unaligned((s as *const libc::sockaddr_storage).cast()) };
            Some(SocketAddr::from((u32::from_be(a.sin_addr.s_addr).to_be_bytes(), u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let a: libc::sockaddr_in6 =
                unsafe { std::ptr::read_unaligned((s as *const libc::sockaddr_storage).cast()) };
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                a.sin6_addr.s6_addr.into(),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(target_os = "linux")]
fn std_to_sockaddr(addr: SocketAddr, out: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from(*a.ip()).to_be() },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in.
            unsafe { std::ptr::write_unaligned((out as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in6.
            unsafe { std::ptr::write_unaligned((out as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// The `IP_PKTINFO` destination of a received datagram.
#[cfg(target_os = "linux")]
fn pktinfo_dst(h: &libc::msghdr) -> Option<IpAddr> {
    if h.msg_controllen == 0 {
        return None;
    }
    // SAFETY: the kernel filled the control buffer the header points to; the CMSG macros stay
    // within msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::IPPROTO_IP && (*c).cmsg_type == libc::IP_PKTINFO {
                let info: libc::in_pktinfo = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                return Some(IpAddr::from(u32::from_be(info.ipi_addr.s_addr).to_be_bytes()));
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    None
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn parked_datagrams_come_back_in_order_and_clear() {
        let (a, b): (SocketAddr, SocketAddr) = ("127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap());
        let mut p = Parked::default();
        assert!(p.is_empty());
        p.push(7u64, a, b"first");
        p.push(9u64, b, b"");
        p.push(7u64, b, b"third");
        let got: Vec<(u64, SocketAddr, Vec<u8>)> = p.iter().map(|(t, s, d)| (t, s, d.to_vec())).collect();
        assert_eq!(got, [(7, a, b"first".to_vec()), (9, b, vec![]), (7, b, b"third".to_vec())]);
        p.clear();
        assert!(p.is_empty() && p.iter().next().is_none());
    }

    #[test]
    fn batches_both_ways_with_pktinfo() {
        let rx = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        enable_pktinfo(&rx).unwrap();
        let port = rx.local_addr().unwrap().port();
        let tx = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        tx.set_nonblocking(true).unwrap();
        enable_pktinfo(&tx).unwrap();
        let tx_port = tx.local_addr().unwrap().port();
        let mut q = SendQueue::new();
        for i in 0..100u8 {
            let dest = SocketAddr::from(([127, 0, 0, 2 + i % 3], port));
            q.push_copy(Some(IpAddr::from([127, 0, 1, 7])), dest, &[i; 40]);
        }
        let f = q.flush(&tx);
        assert_eq!((f.sent, f.failed), (100, 0));
        let mut b = RecvBatch::new(32);
        let mut got = Vec::new();
        while got.len() < 100 {
            match b.recv(&rx) {
                Ok(n) => {
                    for i in 0..n {
                        let (d, from, to) = b.get(i);
                        assert_eq!(from, SocketAddr::from(([127, 0, 1, 7], tx_port)));
                        assert_eq!(to, Some(IpAddr::from([127, 0, 0, 2 + d[0] % 3])));
                        assert_eq!(d.len(), 40);
                        got.push(d[0]);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(1))
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got, (0..100).collect::<Vec<u8>>());
    }
}
