//! Connections to one upstream, on hyper's connection-level client: a LIFO list of idle
//! HTTP/1.1 keep-alive connections, or one shared HTTP/2 connection, each driven by its own task.
//!
//! An HTTP/1.1 connection is lent to one request at a time, and only on the worker thread that
//! made it (each worker keeps its own idle list, see [`crate::workers`]). It goes back to the idle list when
//! the response body has been read to its end ([`UpstreamBody`]); one whose body was abandoned or
//! failed is dropped, which closes it. Idle connections the upstream closed, or idle for longer
//! than [`IDLE_TIMEOUT`], are dropped when next looked at. A request that could not even be
//! written on a reused connection (the upstream closed it under us) is retried once on a new one;
//! a request that may have reached the upstream is never resent.
//!
//! A response body that stalls for longer than the upstream's read timeout between two frames
//! ends in an error (the client's response is cut off), so a stuck upstream cannot hold a
//! connection forever.
//!
//! Why not hyper-util's pooled client: per request it hashed the pool key three times with
//! SipHash, formatted the `Host` header, and spawned a task to wait for the connection to become
//! idle again; this list does none of that (see docs/BENCHMARKS.md for the measured difference).
//!
//! A connection whose response was 101 Switching Protocols is never lent again: hyper hands it to
//! the upgrade (the proxy's WebSocket tunnel), and it closes when the tunnel does.
//!
//! This module must never lend one HTTP/1.1 connection to two requests at once, or an upgraded
//! one at all, or connect anywhere but its upstream's address.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// An idle connection unused for this long is closed rather than reused.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Most idle HTTP/1.1 connections kept per upstream; more are closed when they come back.
pub const MAX_IDLE: usize = 256;

/// Why a request did not get a response from the upstream.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("connect timed out")]
    ConnectTimeout,
    #[error("handshake: {0}")]
    Handshake(hyper::Error),
    #[error("request: {0}")]
    Request(hyper::Error),
    /// Reading the client's request body failed (a malformed chunk, the client went away)
    /// while it was being sent on: the client's fault, not the upstream's.
    #[error("client request body: {0}")]
    ClientBody(hyper::Error),
}

impl UpstreamError {
    /// The metrics label: `connect` when no connection could be made, else `request`
    /// (`client_body` is not the upstream's and is not counted as its error).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Connect(_) | Self::ConnectTimeout | Self::Handshake(_) => "connect",
            Self::Request(_) => "request",
            Self::ClientBody(_) => "client_body",
        }
    }

    /// Whether the request body the client sent is what failed.
    pub fn is_client_body(&self) -> bool {
        matches!(self, Self::ClientBody(_))
    }

    /// Sorts a failed exchange: hyper reports an error of the body it was sending as a "user"
    /// error whose cause is that body's own error, and the only body sent is the client's
    /// (`Incoming`, whose errors are `hyper::Error`s).
    fn of_request(e: hyper::Error) -> Self {
        let body_failed =
            e.is_user() && std::error::Error::source(&e).is_some_and(|c| c.is::<hyper::Error>());
        if body_failed {
            Self::ClientBody(e)
        } else {
            Self::Request(e)
        }
    }
}

/// The response body stalled for longer than the upstream's read timeout.
#[derive(Debug, thiserror::Error)]
#[error("upstream response body stalled for longer than the read timeout")]
pub struct BodyStalled;

struct Idle {
    sender: http1::SendRequest<Incoming>,
    since: Instant,
}

/// The connections to one upstream address.
pub struct Pool {
    /// `host:port`, as given in the upstream URL (port defaulted).
    address: String,
    connect_timeout: Duration,
    /// The longest pause allowed inside a response body.
    body_timeout: Duration,
    http2: bool,
    /// One idle list per worker thread (index [`crate::workers::current`]), so a connection is
    /// lent only on the thread whose runtime drives it.
    idle: Box<[Mutex<VecDeque<Idle>>]>,
    shared_h2: Mutex<Option<http2::SendRequest<Incoming>>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("address", &self.address)
            .field("http2", &self.http2)
            .finish_non_exhaustive()
    }
}

impl Pool {
    pub fn new(
        address: String,
        connect_timeout: Duration,
        body_timeout: Duration,
        http2: bool,
        shards: usize,
    ) -> Self {
        Self {
            address,
            connect_timeout,
            body_timeout,
            http2,
            idle: (0..shards.max(1))
                .map(|_| Mutex::new(VecDeque::new()))
                .collect(),
            shared_h2: Mutex::new(None),
        }
    }

    /// Idle HTTP/1.1 connections held now (for tests and metrics).
    pub fn idle_count(&self) -> usize {
        self.idle
            .iter()
            .map(|i| i.lock().map_or(0, |i| i.len()))
            .sum()
    }

    /// This thread's idle list.
    fn idle_here(&self) -> &Mutex<VecDeque<Idle>> {
        &self.idle[crate::workers::current() % self.idle.len()]
    }

    /// Sends `req` (origin-form URI and a `Host` header for HTTP/1.1, an absolute URI for HTTP/2)
    /// and returns the response head; the body streams from the connection.
    pub async fn send(
        self: &Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        // The cold paths (HTTP/2, connecting) are boxed so the future every request carries
        // stays small: hyper moves it around whole.
        if self.http2 {
            return Box::pin(self.send_h2(req)).await;
        }
        let mut req = req;
        let mut fresh_only = false;
        loop {
            let (mut sender, reused) = match (!fresh_only).then(|| self.take_idle()).flatten() {
                Some(s) => (s, true),
                None => (Box::pin(self.connect_h1()).await?, false),
            };
            if !sender.is_ready() {
                // Normally a moment: the connection's task has not yet noticed the previous
                // response ended. Bounded, in case the previous request's body is still going up.
                match tokio::time::timeout(self.connect_timeout, sender.ready()).await {
                    Ok(Ok(())) => {}
                    _ if reused => continue,
                    Ok(Err(e)) => return Err(UpstreamError::Request(e)),
                    Err(_) => return Err(UpstreamError::ConnectTimeout),
                }
            }
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok(self.lend(resp, Some(sender))),
                Err(mut e) => match e.take_message() {
                    // Never written: safe to send again, once, on a connection of our own.
                    Some(back) if reused => {
                        req = back;
                        fresh_only = true;
                    }
                    _ => return Err(UpstreamError::of_request(e.into_error())),
                },
            }
        }
    }

    async fn send_h2(
        self: &Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let current = self
            .shared_h2
            .lock()
            .ok()
            .and_then(|g| g.as_ref().filter(|s| !s.is_closed()).cloned());
        let mut sender = match current {
            Some(s) => s,
            None => {
                let s = self.connect_h2().await?;
                if let Ok(mut g) = self.shared_h2.lock() {
                    *g = Some(s.clone());
                }
                s
            }
        };
        sender.ready().await.map_err(UpstreamError::Request)?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(UpstreamError::of_request)?;
        Ok(self.lend(resp, None))
    }

    fn lend(
        self: &Arc<Self>,
        resp: Response<Incoming>,
        sender: Option<http1::SendRequest<Incoming>>,
    ) -> Response<UpstreamBody> {
        // After a 101 the connection belongs to the upgrade (crate::upgrade): dropping the
        // sender here keeps it from ever being lent again.
        let sender = sender.filter(|_| resp.status() != http::StatusCode::SWITCHING_PROTOCOLS);
        resp.map(|inner| {
            let mut body = UpstreamBody {
                inner,
                lease: sender.map(|sender| Lease {
                    sender,
                    pool: self.clone(),
                }),
                timeout: self.body_timeout,
                stall: None,
                stall_armed: false,
            };
            if body.inner.is_end_stream() {
                body.release();
            }
            body
        })
    }

    fn take_idle(&self) -> Option<http1::SendRequest<Incoming>> {
        let mut idle = self.idle_here().lock().ok()?;
        while let Some(c) = idle.pop_back() {
            if !c.sender.is_closed() && c.since.elapsed() < IDLE_TIMEOUT {
                return Some(c.sender);
            }
        }
        None
    }

    fn put(&self, sender: http1::SendRequest<Incoming>) {
        if sender.is_closed() {
            return;
        }
        let Ok(mut idle) = self.idle_here().lock() else {
            return;
        };
        // The oldest sit at the front: close those past their time, and make room.
        while idle
            .front()
            .is_some_and(|c| c.since.elapsed() >= IDLE_TIMEOUT || idle.len() >= MAX_IDLE)
        {
            idle.pop_front();
        }
        idle.push_back(Idle {
            sender,
            since: Instant::now(),
        });
    }

    async fn connect(&self) -> Result<TokioIo<TcpStream>, UpstreamError> {
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(&self.address))
            .await
            .map_err(|_| UpstreamError::ConnectTimeout)?
            .map_err(UpstreamError::Connect)?;
        let _ = stream.set_nodelay(true);
        Ok(TokioIo::new(stream))
    }

    async fn connect_h1(&self) -> Result<http1::SendRequest<Incoming>, UpstreamError> {
        let io = self.connect().await?;
        let (sender, conn) = http1::handshake(io)
            .await
            .map_err(UpstreamError::Handshake)?;
        drive(conn.with_upgrades(), &self.address);
        Ok(sender)
    }

    async fn connect_h2(&self) -> Result<http2::SendRequest<Incoming>, UpstreamError> {
        let io = self.connect().await?;
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(io)
            .await
            .map_err(UpstreamError::Handshake)?;
        drive(conn, &self.address);
        Ok(sender)
    }
}

/// Runs a connection's task (HTTP/1.1 or HTTP/2) until the connection closes.
fn drive<C, E>(conn: C, address: &str)
where
    C: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display,
{
    let address = address.to_owned();
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, upstream = address, "upstream connection ended with an error");
        }
    });
}

/// An HTTP/1.1 connection lent to one response; back to its pool when the body ends.
struct Lease {
    sender: http1::SendRequest<Incoming>,
    pool: Arc<Pool>,
}

/// An upstream response body: streams the upstream's frames, returns the connection to the pool
/// at the end, and fails when the upstream pauses for longer than its read timeout.
pub struct UpstreamBody {
    inner: Incoming,
    lease: Option<Lease>,
    timeout: Duration,
    /// Created the first time the body has to wait, then re-armed after each frame.
    stall: Option<Pin<Box<Sleep>>>,
    stall_armed: bool,
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody")
            .field("pooled", &self.lease.is_some())
            .finish_non_exhaustive()
    }
}

impl UpstreamBody {
    fn release(&mut self) {
        if let Some(l) = self.lease.take() {
            l.pool.put(l.sender);
        }
    }
}

impl hyper::body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.stall_armed = false;
                if this.inner.is_end_stream() {
                    this.release();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.lease = None;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                this.release();
                Poll::Ready(None)
            }
            Poll::Pending => {
                if !this.stall_armed {
                    let deadline = tokio::time::Instant::now() + this.timeout;
                    match &mut this.stall {
                        Some(s) => s.as_mut().reset(deadline),
                        None => this.stall = Some(Box::pin(tokio::time::sleep_until(deadline))),
                    }
                    this.stall_armed = true;
                }
                if let Some(s) = &mut this.stall {
                    if s.as_mut().poll(cx).is_ready() {
                        // The connection is mid-response: it cannot be reused.
                        this.lease = None;
                        return Poll::Ready(Some(Err(Box::new(BodyStalled))));
                    }
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
