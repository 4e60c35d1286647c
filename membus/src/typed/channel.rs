//! Typed senders and receivers over memmsg and memcmd.

use std::marker::PhantomData;
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};
use crate::memcmd::MemCmd;
use crate::memmsg;
use crate::name::{IntoShareName, ShareName};
use crate::ring::{QueueOptions, Received};
use crate::typed::codec::Message;
use crate::typed::schema::{self, Compat, SchemaObject};

/// Publishes `M`'s description beside the share a typed constructor just created.
fn publish<M: Message>(share: &ShareName, opts: &QueueOptions) -> Result<Option<SchemaObject>> {
    match (M::schema(), schema::companion_name(share)) {
        (Some(s), Some(_)) => schema::publish(share, &s, opts.mode).map(Some),
        _ => Ok(None),
    }
}

/// Checks a channel's published description (if it has one) against `M`'s.
fn check<M: Message>(share: &ShareName) -> Result<Compat> {
    let (Some(mine), Some(theirs)) = (M::schema(), schema::read(share)?) else {
        return Ok(Compat::default());
    };
    let c = mine.compare(&theirs);
    if c.is_compatible() {
        return Ok(c);
    }
    Err(Error::new(
        ErrorKind::SchemaMismatch,
        format!(
            "channel does not match {} ({} difference{}): {} (the channel was created for {})",
            std::any::type_name::<M>(),
            c.differences.len(),
            if c.differences.len() == 1 { "" } else { "s" },
            c.differences.join("; "),
            theirs.type_name
        ),
    )
    .with_share(share.as_str()))
}

/// What a typed receive produced: exactly one of these.
#[must_use]
#[derive(Clone, Debug, PartialEq)]
pub enum Recv<M> {
    /// The next message, decoded.
    Message {
        /// Its sequence number.
        seq: u64,
        /// The message.
        msg: M,
    },
    /// The next message did not decode as `M`: the raw bytes and why. It is consumed like
    /// any other message; nothing after it is lost.
    Undecodable {
        /// Its sequence number.
        seq: u64,
        /// The payload as it was on the wire.
        raw: Vec<u8>,
        /// Why it did not decode.
        reason: String,
    },
    /// Nothing arrived before the deadline.
    Timeout,
    /// The writer overtook this receiver; `lost` messages were skipped.
    Overrun {
        /// How many messages this receiver will never see.
        lost: u64,
    },
}

enum Tx {
    Msg(memmsg::Writer),
    Cmd(MemCmd),
}

/// Sends messages of type `M` through a memmsg writer or a memcmd handle.
pub struct Sender<M> {
    tx: Tx,
    buf: Vec<u8>,
    compat: Compat,
    _desc: Option<SchemaObject>,
    _m: PhantomData<fn(&M)>,
}

impl<M: Message> Sender<M> {
    /// Creates a memmsg share for `M` (see [`memmsg::Writer::create_with`]) and publishes
    /// `M`'s schema description beside it (`<name>.membus-schema`, removed with the
    /// sender), so `membus schema`, `membus send` and generated code know the messages.
    ///
    /// # Errors
    /// As for [`memmsg::Writer::create_with`], and the creation errors of the companion.
    pub fn create_memmsg(
        name: impl IntoShareName,
        capacity: usize,
        opts: &QueueOptions,
    ) -> Result<Sender<M>> {
        let w = memmsg::Writer::create_with(name, capacity, opts)?;
        let desc = publish::<M>(w.name(), opts)?;
        let mut s = Sender::from(w);
        s._desc = desc;
        Ok(s)
    }

    /// Attaches a sender to a memcmd share; when the share carries a schema description,
    /// checks it against `M`'s (see the evolution rules in [`typed`](crate::typed)).
    ///
    /// # Errors
    /// As for [`MemCmd::attach_with`]; [`ErrorKind::SchemaMismatch`] naming each
    /// incompatible difference; [`ErrorKind::InvalidLayout`] for an unreadable description.
    pub fn attach_memcmd(name: impl IntoShareName, opts: &QueueOptions) -> Result<Sender<M>> {
        let c = MemCmd::attach_with(name, opts)?;
        let compat = check::<M>(c.name())?;
        let mut s = Sender::from(c);
        s.compat = compat;
        Ok(s)
    }

    /// How the channel's published schema differs from `M` (empty when it has none or
    /// the same).
    pub fn compat(&self) -> &Compat {
        &self.compat
    }

    /// Encodes `msg` and writes it; returns its sequence number.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] when `msg` cannot be encoded, and the errors of the
    /// raw `write` ([`ErrorKind::MessageTooLarge`], lock errors).
    pub fn send(&mut self, msg: &M) -> Result<u64> {
        self.buf.clear();
        msg.encode(&mut self.buf).map_err(|e| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("message could not be encoded: {e}"),
            )
        })?;
        match &self.tx {
            Tx::Msg(w) => w.write(&self.buf),
            Tx::Cmd(c) => c.write(&self.buf),
        }
    }
}

impl<M> From<memmsg::Writer> for Sender<M> {
    fn from(w: memmsg::Writer) -> Self {
        Sender {
            tx: Tx::Msg(w),
            buf: Vec::new(),
            compat: Compat::default(),
            _desc: None,
            _m: PhantomData,
        }
    }
}

impl<M> From<MemCmd> for Sender<M> {
    fn from(c: MemCmd) -> Self {
        Sender {
            tx: Tx::Cmd(c),
            buf: Vec::new(),
            compat: Compat::default(),
            _desc: None,
            _m: PhantomData,
        }
    }
}

enum Rx {
    Msg(memmsg::Reader),
    Cmd(MemCmd),
}

/// Receives messages of type `M` from a memmsg reader or a memcmd handle.
pub struct Receiver<M> {
    rx: Rx,
    buf: Vec<u8>,
    compat: Compat,
    _desc: Option<SchemaObject>,
    _m: PhantomData<fn() -> M>,
}

impl<M: Message> Receiver<M> {
    /// Creates a memcmd share for `M` (see [`MemCmd::create_with`]) and publishes `M`'s
    /// schema description beside it (removed with the receiver).
    ///
    /// # Errors
    /// As for [`MemCmd::create_with`], and the creation errors of the companion.
    pub fn create_memcmd(
        name: impl IntoShareName,
        capacity: usize,
        opts: &QueueOptions,
    ) -> Result<Receiver<M>> {
        let c = MemCmd::create_with(name, capacity, opts)?;
        let desc = publish::<M>(c.name(), opts)?;
        let mut r = Receiver::from(c);
        r._desc = desc;
        Ok(r)
    }

    /// Attaches a receiver to a memmsg share; when the share carries a schema description,
    /// checks it against `M`'s (see the evolution rules in [`typed`](crate::typed)).
    ///
    /// # Errors
    /// As for [`memmsg::Reader::attach_with`]; [`ErrorKind::SchemaMismatch`] naming each
    /// incompatible difference; [`ErrorKind::InvalidLayout`] for an unreadable description.
    pub fn attach_memmsg(name: impl IntoShareName, opts: &QueueOptions) -> Result<Receiver<M>> {
        let r = memmsg::Reader::attach_with(name, opts)?;
        let compat = check::<M>(r.name())?;
        let mut rx = Receiver::from(r);
        rx.compat = compat;
        Ok(rx)
    }

    /// How the channel's published schema differs from `M` (new variants this receiver
    /// will deliver as [`Recv::Undecodable`]); empty when it has none or the same.
    pub fn compat(&self) -> &Compat {
        &self.compat
    }

    /// Receives the next message, waiting up to `timeout`, with the raw reader's
    /// timeout and overrun semantics; a message that does not decode is delivered as
    /// [`Recv::Undecodable`].
    ///
    /// # Errors
    /// The errors of the raw `read` (lock errors, [`ErrorKind::InvalidLayout`]).
    pub fn recv(&mut self, timeout: Duration) -> Result<Recv<M>> {
        let got = match &mut self.rx {
            Rx::Msg(r) => r.read_into(&mut self.buf, timeout)?,
            Rx::Cmd(c) => c.read_into(&mut self.buf, timeout)?,
        };
        Ok(match got {
            Received::Message { seq, .. } => match M::decode(&self.buf) {
                Ok(msg) => Recv::Message { seq, msg },
                Err(e) => Recv::Undecodable {
                    seq,
                    raw: self.buf.clone(),
                    reason: e.to_string(),
                },
            },
            Received::Timeout => Recv::Timeout,
            Received::Overrun { lost } => Recv::Overrun { lost },
        })
    }

    /// Whether a receive would find something now, without taking the lock.
    pub fn poll(&self) -> bool {
        match &self.rx {
            Rx::Msg(r) => r.poll(),
            Rx::Cmd(c) => c.poll(),
        }
    }

    /// Blocks until [`poll`](Self::poll) is true or `timeout` passes, without consuming
    /// anything; returns `poll()`. Also a source for [`select`](crate::select::select).
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        crate::select::wait_ready(self, timeout)
    }

    /// Waits for the next message, undecodable message or overrun without blocking a
    /// thread. Cancellation-safe (see [`aio`](crate::aio)).
    ///
    /// # Errors
    /// As for [`recv`](Self::recv).
    #[cfg(feature = "async")]
    pub async fn recv_async(&mut self) -> Result<Recv<M>> {
        loop {
            match self.recv(Duration::ZERO)? {
                Recv::Timeout => crate::aio::ready(&*self).await,
                got => return Ok(got),
            }
        }
    }

    /// The received items as a [`Stream`](crate::aio::Stream) that never ends.
    #[cfg(feature = "async")]
    pub fn stream(&mut self) -> crate::aio::ItemStream<'_, Self, Result<Recv<M>>>
    where
        M: Send + 'static,
    {
        crate::aio::ItemStream::new(self, |r| {
            Box::pin(async move {
                let item = r.recv_async().await;
                (item, r)
            })
        })
    }

    /// Everything receivable now, without waiting.
    pub fn try_iter(&mut self) -> impl Iterator<Item = Result<Recv<M>>> + '_ {
        std::iter::from_fn(move || match self.recv(Duration::ZERO) {
            Ok(Recv::Timeout) => None,
            other => Some(other),
        })
    }
}

impl<M> crate::select::sealed::Sealed for Receiver<M> {}

impl<M> crate::select::Selectable for Receiver<M> {
    fn is_ready(&self) -> bool {
        match &self.rx {
            Rx::Msg(r) => r.poll(),
            Rx::Cmd(c) => c.poll(),
        }
    }

    fn wait_spec(&self) -> crate::select::WaitSpec<'_> {
        match &self.rx {
            Rx::Msg(r) => r.wait_spec(),
            Rx::Cmd(c) => c.wait_spec(),
        }
    }
}

impl<M> From<memmsg::Reader> for Receiver<M> {
    fn from(r: memmsg::Reader) -> Self {
        Receiver {
            rx: Rx::Msg(r),
            buf: Vec::new(),
            compat: Compat::default(),
            _desc: None,
            _m: PhantomData,
        }
    }
}

impl<M> From<MemCmd> for Receiver<M> {
    fn from(c: MemCmd) -> Self {
        Receiver {
            rx: Rx::Cmd(c),
            buf: Vec::new(),
            compat: Compat::default(),
            _desc: None,
            _m: PhantomData,
        }
    }
}
