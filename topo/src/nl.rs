//! A small synchronous rtnetlink client that batches requests.
//!
//! Messages are built with `netlink-packet-route`; many requests go out in
//! one `send` and their ACKs are read back together, which is what makes
//! bring-up fast. A socket stays bound to the namespace of the thread that
//! opened it, so one [`Nl`] per namespace, opened from a thread inside it.

use std::net::IpAddr;
use std::os::fd::RawFd;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// A netlink request failed.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The socket could not be opened or used.
    #[error("netlink socket: {0}")]
    Io(#[from] std::io::Error),
    /// The kernel refused a request.
    #[error("{what}: {}{}", std::io::Error::from_raw_os_error(*errno), if msg.is_empty() { String::new() } else { format!(" ({msg})") })]
    Kernel {
        /// The request.
        what: String,
        /// errno.
        errno: i32,
        /// The kernel's extended ack message, if any.
        msg: String,
    },
    /// A reply could not be decoded.
    #[error("cannot decode netlink reply: {0}")]
    Decode(String),
}

const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const CHUNK: usize = 48 * 1024;

/// A NETLINK_ROUTE socket in one namespace with a queue of requests.
pub struct Nl {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
    pending: Vec<(u32, String)>,
    rbuf: Vec<u8>,
}

impl Nl {
    /// Opens a socket in the calling thread's namespace.
    pub fn new() -> Result<Nl, NetlinkError> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        let _ = sock.set_cap_ack(true);
        let _ = sock.set_ext_ack(true);
        let _ = sock.set_rx_buf_sz(1 << 20);
        Ok(Nl {
            sock,
            seq: 1,
            buf: Vec::with_capacity(CHUNK * 2),
            pending: Vec::new(),
            rbuf: vec![0u8; 1 << 16],
        })
    }

    /// Queues a request that expects an ACK; `what` names it in errors.
    pub fn queue(&mut self, msg: RouteNetlinkMessage, flags: u16, what: impl Into<String>) {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let mut hdr = NetlinkHeader::default();
        hdr.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        hdr.sequence_number = seq;
        let mut nm = NetlinkMessage::new(hdr, NetlinkPayload::InnerMessage(msg));
        nm.finalize();
        let start = self.buf.len();
        self.buf.resize(start + nm.buffer_len(), 0);
        nm.serialize(&mut self.buf[start..]);
        self.pending.push((seq, what.into()));
    }

    /// Number of queued requests.
    pub fn queued(&self) -> usize {
        self.pending.len()
    }

    /// Sends everything queued and waits for all ACKs. Returns the first
    /// error (all requests are still processed by the kernel).
    pub fn flush(&mut self) -> Result<(), NetlinkError> {
        let buf = std::mem::take(&mut self.buf);
        let pending = std::mem::take(&mut self.pending);
        let mut first_err = None;
        // Split at message boundaries into chunks the socket accepts.
        let mut off = 0;
        let mut pi = 0;
        while off < buf.len() {
            let mut end = off;
            let mut n = 0;
            while end < buf.len() {
                let len = u32::from_ne_bytes([buf[end], buf[end + 1], buf[end + 2], buf[end + 3]])
                    as usize;
                let len = (len + 3) & !3;
                if end > off && end + len - off > CHUNK {
                    break;
                }
                end += len;
                n += 1;
            }
            self.sock.send(&buf[off..end], 0)?;
            let chunk = &pending[pi..pi + n];
            if let Err(e) = self.read_acks(chunk) {
                first_err.get_or_insert(e);
            }
            pi += n;
            off = end;
        }
        self.buf = buf;
        self.buf.clear();
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn read_acks(&mut self, chunk: &[(u32, String)]) -> Result<(), NetlinkError> {
        let mut left = chunk.len();
        let mut first_err = None;
        while left > 0 {
            let n = self.sock.recv(&mut &mut self.rbuf[..], 0)?;
            let mut off = 0;
            while off + 16 <= n {
                let b = &self.rbuf[off..n];
                let (len, ty, flags, seq) = msg_header(b)?;
                if ty == NLMSG_ERROR && len >= 20 {
                    let errno = -i32::from_ne_bytes([b[16], b[17], b[18], b[19]]);
                    left = left.saturating_sub(1);
                    if errno != 0 && first_err.is_none() {
                        let what = chunk
                            .iter()
                            .find(|(s, _)| *s == seq)
                            .map(|(_, w)| w.clone())
                            .unwrap_or_else(|| format!("request #{seq}"));
                        let msg = if flags & NLM_F_ACK_TLVS != 0 {
                            ext_ack_msg(&b[..len], 20 + 16)
                        } else {
                            String::new()
                        };
                        first_err = Some(NetlinkError::Kernel { what, errno, msg });
                    }
                }
                off += (len + 3) & !3;
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Sends one dump request and returns every reply message.
    pub fn dump(
        &mut self,
        msg: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        self.request(msg, NLM_F_DUMP)
    }

    /// Sends one request (a dump if `flags` has NLM_F_DUMP) and returns the replies.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        let is_dump = flags & NLM_F_DUMP != 0;
        if !self.pending.is_empty() {
            self.flush()?;
        }
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let mut hdr = NetlinkHeader::default();
        hdr.flags = NLM_F_REQUEST | flags;
        hdr.sequence_number = seq;
        let mut nm = NetlinkMessage::new(hdr, NetlinkPayload::InnerMessage(msg));
        nm.finalize();
        let mut out = vec![0u8; nm.buffer_len()];
        nm.serialize(&mut out);
        self.sock.send(&out, 0)?;
        let mut replies = Vec::new();
        loop {
            let n = self.sock.recv(&mut &mut self.rbuf[..], 0)?;
            let mut off = 0;
            while off + 16 <= n {
                let b = &self.rbuf[off..n];
                let (len, ty, _, _) = msg_header(b)?;
                if ty == NLMSG_DONE {
                    return Ok(replies);
                }
                if ty == NLMSG_ERROR {
                    let errno = -i32::from_ne_bytes([b[16], b[17], b[18], b[19]]);
                    if errno != 0 {
                        return Err(NetlinkError::Kernel {
                            what: "get".into(),
                            errno,
                            msg: String::new(),
                        });
                    }
                    if !is_dump {
                        return Ok(replies);
                    }
                } else {
                    let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&b[..len])
                        .map_err(|e| NetlinkError::Decode(e.to_string()))?;
                    if let NetlinkPayload::InnerMessage(im) = m.payload {
                        replies.push(im);
                    }
                    if !is_dump {
                        return Ok(replies);
                    }
                }
                off += (len + 3) & !3;
            }
        }
    }

    /// Gets one link by index.
    pub fn get_link(&mut self, index: u32) -> Result<LinkMessage, NetlinkError> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        match self
            .request(RouteNetlinkMessage::GetLink(m), 0)?
            .into_iter()
            .next()
        {
            Some(RouteNetlinkMessage::NewLink(l)) => Ok(l),
            _ => Err(NetlinkError::Decode("no link in reply".into())),
        }
    }

    /// Dumps all links of this namespace.
    pub fn links(&mut self) -> Result<Vec<LinkMessage>, NetlinkError> {
        self.dump_of(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            |m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            },
        )
    }

    /// Dumps all addresses of this namespace.
    pub fn addresses(&mut self) -> Result<Vec<AddressMessage>, NetlinkError> {
        self.dump_of(
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            |m| match m {
                RouteNetlinkMessage::NewAddress(a) => Some(a),
                _ => None,
            },
        )
    }

    /// A dump's answers of the one kind `pick` keeps.
    fn dump_of<T>(
        &mut self,
        req: RouteNetlinkMessage,
        pick: fn(RouteNetlinkMessage) -> Option<T>,
    ) -> Result<Vec<T>, NetlinkError> {
        Ok(self.dump(req)?.into_iter().filter_map(pick).collect())
    }
}

/// The length, type, flags and sequence number of the netlink message at
/// the start of `b` (at least 16 bytes), its length checked against `b`.
fn msg_header(b: &[u8]) -> Result<(usize, u16, u16, u32), NetlinkError> {
    let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
    if len < 16 || len > b.len() {
        return Err(NetlinkError::Decode(format!("bad message length {len}")));
    }
    let ty = u16::from_ne_bytes([b[4], b[5]]);
    let flags = u16::from_ne_bytes([b[6], b[7]]);
    let seq = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
    Ok((len, ty, flags, seq))
}

fn ext_ack_msg(msg: &[u8], mut off: usize) -> String {
    while off + 4 <= msg.len() {
        let len = u16::from_ne_bytes([msg[off], msg[off + 1]]) as usize;
        let ty = u16::from_ne_bytes([msg[off + 2], msg[off + 3]]);
        if len < 4 || off + len > msg.len() {
            break;
        }
        if ty == 1 {
            let s = &msg[off + 4..off + len];
            let s = s.split(|c| *c == 0).next().unwrap_or(&[]);
            return String::from_utf8_lossy(s).into_owned();
        }
        off += (len + 3) & !3;
    }
    String::new()
}

/// Flags for a request that creates an object that must not exist yet.
pub const CREATE: u16 = NLM_F_CREATE | NLM_F_EXCL;

/// Where a new link goes and what it is called.
pub struct LinkSpec<'a> {
    /// Interface name.
    pub name: &'a str,
    /// ifindex to request (unique in the target namespace).
    pub index: u32,
    /// Target namespace fd (None: the socket's namespace).
    pub netns_fd: Option<RawFd>,
    /// Bridge to enslave to (ifindex in the target namespace).
    pub master: Option<u32>,
    /// Fixed MAC.
    pub mac: Option<[u8; 6]>,
    /// MTU.
    pub mtu: Option<u32>,
}

fn link_msg(spec: &LinkSpec<'_>) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = spec.index;
    m.header.flags = LinkFlags::Up;
    m.header.change_mask = LinkFlags::Up;
    m.attributes
        .push(LinkAttribute::IfName(spec.name.to_string()));
    if let Some(fd) = spec.netns_fd {
        m.attributes.push(LinkAttribute::NetNsFd(fd));
    }
    if let Some(mac) = spec.mac {
        m.attributes.push(LinkAttribute::Address(mac.to_vec()));
    }
    if let Some(mtu) = spec.mtu {
        m.attributes.push(LinkAttribute::Mtu(mtu));
    }
    if let Some(master) = spec.master {
        m.attributes.push(LinkAttribute::Controller(master));
    }
    m
}

/// A veth pair with each end created directly in its namespace; the first end is up.
/// Only the first end may carry a `master` (the kernel ignores it on the peer).
pub fn new_veth(a: &LinkSpec<'_>, b: &LinkSpec<'_>) -> RouteNetlinkMessage {
    let mut m = link_msg(a);
    let mut peer = link_msg(b);
    // Opening the peer before the pair is linked fails (ENOTCONN): the
    // peer is set up afterwards from its own namespace.
    peer.header.flags = LinkFlags::empty();
    peer.header.change_mask = LinkFlags::empty();
    m.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
    ]));
    RouteNetlinkMessage::NewLink(m)
}

/// A bridge with a fixed ifindex, up.
pub fn new_bridge(name: &str, index: u32) -> RouteNetlinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = index;
    m.header.flags = LinkFlags::Up;
    m.header.change_mask = LinkFlags::Up;
    m.attributes.push(LinkAttribute::IfName(name.to_string()));
    m.attributes
        .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
            InfoKind::Bridge,
        )]));
    RouteNetlinkMessage::NewLink(m)
}

/// Sets a link up, optionally with an alias and a master.
pub fn set_link(
    index: u32,
    up: bool,
    alias: Option<&str>,
    master: Option<u32>,
) -> RouteNetlinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = index;
    if up {
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
    }
    if let Some(a) = alias {
        m.attributes.push(LinkAttribute::IfAlias(a.to_string()));
    }
    if let Some(c) = master {
        m.attributes.push(LinkAttribute::Controller(c));
    }
    RouteNetlinkMessage::SetLink(m)
}

/// The address family of `ip`.
fn family(ip: IpAddr) -> AddressFamily {
    if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

/// Adds an address (no DAD, so IPv6 is usable at once).
pub fn new_addr(index: u32, addr: IpAddr, prefix: u8) -> RouteNetlinkMessage {
    let mut m = AddressMessage::default();
    m.header.family = family(addr);
    m.header.prefix_len = prefix;
    m.header.index = index;
    m.header.scope = AddressScope::Universe;
    m.header.flags = AddressHeaderFlags::Nodad;
    m.attributes.push(AddressAttribute::Local(addr));
    m.attributes.push(AddressAttribute::Address(addr));
    if let IpAddr::V4(v4) = addr {
        if prefix < 31 {
            let host = if prefix == 0 {
                u32::MAX
            } else {
                u32::MAX >> prefix
            };
            m.attributes
                .push(AddressAttribute::Broadcast((u32::from(v4) | host).into()));
        }
    }
    m.attributes
        .push(AddressAttribute::Flags(AddressFlags::Nodad));
    RouteNetlinkMessage::NewAddress(m)
}

/// Adds a route in the main table.
pub fn new_route(
    dst: IpAddr,
    prefix: u8,
    via: Option<IpAddr>,
    oif: Option<u32>,
) -> RouteNetlinkMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = family(dst);
    m.header.destination_prefix_length = prefix;
    m.header.table = 254;
    m.header.protocol = RouteProtocol::Static;
    m.header.scope = if via.is_some() {
        RouteScope::Universe
    } else {
        RouteScope::Link
    };
    m.header.kind = RouteType::Unicast;
    if prefix > 0 {
        m.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(dst)));
    }
    if let Some(g) = via {
        m.attributes
            .push(RouteAttribute::Gateway(RouteAddress::from(g)));
    }
    if let Some(o) = oif {
        m.attributes.push(RouteAttribute::Oif(o));
    }
    RouteNetlinkMessage::NewRoute(m)
}

/// A request with a description for error messages.
pub type RouteNetlinkMessageWhat = (RouteNetlinkMessage, String);
