//! Counters of the binary-protocol doors (QUIC and WebSocket), one set per
//! engine (attached with [`weir_storage::Engine::extension`], so every door
//! serving an engine counts into the same place and `/metrics` reads it).
//! Plain atomics indexed by opcode and error code: label values come from
//! fixed tables, never from a client's input.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use weir_storage::Engine;

use crate::proto::Opcode;

/// A binary-protocol door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// QUIC.
    Quic,
    /// WebSocket (binary or JSON messages).
    Ws,
}

impl Door {
    /// Both doors, in label order.
    pub const ALL: [Door; 2] = [Door::Quic, Door::Ws];

    /// The `door` label value.
    pub fn label(self) -> &'static str {
        match self {
            Door::Quic => "quic",
            Door::Ws => "ws",
        }
    }
}

/// Opcodes are one byte; request opcodes are below 0x80.
const OPCODES: usize = 0x80;
/// Error codes of PROTOCOL.md (0..=24 today), with room to grow.
const ERROR_CODES: usize = 64;

/// What one door counts.
#[derive(Debug)]
pub struct DoorCounters {
    connections_open: AtomicI64,
    connections: AtomicU64,
    requests: [AtomicU64; OPCODES],
    errors: [AtomicU64; ERROR_CODES],
    subscriptions_open: AtomicI64,
    state_subscriptions_open: AtomicI64,
    send_buffer_bytes: AtomicI64,
}

impl Default for DoorCounters {
    fn default() -> Self {
        DoorCounters {
            connections_open: AtomicI64::new(0),
            connections: AtomicU64::new(0),
            requests: std::array::from_fn(|_| AtomicU64::new(0)),
            errors: std::array::from_fn(|_| AtomicU64::new(0)),
            subscriptions_open: AtomicI64::new(0),
            state_subscriptions_open: AtomicI64::new(0),
            send_buffer_bytes: AtomicI64::new(0),
        }
    }
}

/// Which subscription gauge a [`Gauge`] holds.
#[derive(Debug, Clone, Copy)]
pub enum SubscriptionKind {
    /// A `Subscribe` (records of a stream).
    Records,
    /// A `SubscribeState` (snapshot and changes).
    State,
}

impl DoorCounters {
    /// A connection opened; the returned guard counts it closed when dropped.
    pub fn connection(self: &Arc<Self>) -> Gauge {
        self.connections.fetch_add(1, Ordering::Relaxed);
        Gauge::up(Arc::clone(self), |c| &c.connections_open)
    }

    /// A subscription started; the guard counts it ended when dropped.
    pub fn subscription(self: &Arc<Self>, kind: SubscriptionKind) -> Gauge {
        Gauge::up(
            Arc::clone(self),
            match kind {
                SubscriptionKind::Records => |c: &DoorCounters| &c.subscriptions_open,
                SubscriptionKind::State => |c: &DoorCounters| &c.state_subscriptions_open,
            },
        )
    }

    /// A request frame with this opcode was received.
    pub fn request(&self, opcode: u8) {
        if let Some(c) = self.requests.get(opcode as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// An `Error` frame with this code was sent.
    pub fn error(&self, code: u16) {
        if let Some(c) = self.errors.get(code as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Encoded frames waiting for the transport grew (or, negative, shrank).
    pub fn buffered(&self, delta: i64) {
        self.send_buffer_bytes.fetch_add(delta, Ordering::Relaxed);
    }

    /// Connections open now.
    pub fn connections_open(&self) -> u64 {
        self.connections_open.load(Ordering::Relaxed).max(0) as u64
    }

    /// Connections accepted since start.
    pub fn connections_total(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// `(request name, count)` for every request opcode seen at least once.
    pub fn requests(&self) -> Vec<(&'static str, u64)> {
        Opcode::ALL
            .iter()
            .filter(|op| (**op as usize) < OPCODES)
            .map(|op| {
                (
                    opcode_name(*op),
                    self.requests[*op as usize].load(Ordering::Relaxed),
                )
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// `(error code, count)` for every code sent at least once.
    pub fn errors(&self) -> Vec<(u16, u64)> {
        (0..ERROR_CODES)
            .map(|c| (c as u16, self.errors[c].load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Open subscriptions of `kind`.
    pub fn subscriptions_open(&self, kind: SubscriptionKind) -> u64 {
        let g = match kind {
            SubscriptionKind::Records => &self.subscriptions_open,
            SubscriptionKind::State => &self.state_subscriptions_open,
        };
        g.load(Ordering::Relaxed).max(0) as u64
    }

    /// Bytes of encoded frames waiting for the transport, over all connections.
    pub fn send_buffer_bytes(&self) -> u64 {
        self.send_buffer_bytes.load(Ordering::Relaxed).max(0) as u64
    }
}

/// The metric label of a request opcode: its name in snake case.
fn opcode_name(op: Opcode) -> &'static str {
    match op {
        Opcode::Hello => "hello",
        Opcode::Ping => "ping",
        Opcode::Create => "create",
        Opcode::Head => "head",
        Opcode::Delete => "delete",
        Opcode::Append => "append",
        Opcode::Read => "read",
        Opcode::Subscribe => "subscribe",
        Opcode::Unsubscribe => "unsubscribe",
        Opcode::Get => "get",
        Opcode::Scan => "scan",
        Opcode::SubscribeState => "subscribe_state",
        Opcode::Wait => "wait",
        Opcode::ActivateTemplates => "activate_templates",
        _ => "reply",
    }
}

/// A gauge held up while this guard lives.
pub struct Gauge {
    counters: Arc<DoorCounters>,
    which: fn(&DoorCounters) -> &AtomicI64,
}

impl Gauge {
    fn up(counters: Arc<DoorCounters>, which: fn(&DoorCounters) -> &AtomicI64) -> Gauge {
        which(&counters).fetch_add(1, Ordering::Relaxed);
        Gauge { counters, which }
    }
}

impl Drop for Gauge {
    fn drop(&mut self) {
        (self.which)(&self.counters).fetch_sub(1, Ordering::Relaxed);
    }
}

/// Both doors' counters of one engine.
#[derive(Debug, Default)]
pub struct DoorMetrics {
    quic: Arc<DoorCounters>,
    ws: Arc<DoorCounters>,
}

impl DoorMetrics {
    /// The counters of `engine`'s doors.
    pub fn of(engine: &Engine) -> Arc<DoorMetrics> {
        engine.extension::<DoorMetrics>()
    }

    /// One door's counters.
    pub fn door(&self, door: Door) -> &Arc<DoorCounters> {
        match door {
            Door::Quic => &self.quic,
            Door::Ws => &self.ws,
        }
    }
}
