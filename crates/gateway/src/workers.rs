//! The main listener's worker threads, in the manner of nginx's worker processes: by default one
//! per CPU, each a single-threaded tokio runtime with its own listening socket on the gateway's
//! address (`SO_REUSEPORT`, so the kernel spreads new connections across them). A client
//! connection, the upstream connections its requests borrow ([`crate::pool`] keeps one idle
//! list per worker) and every wake-up between them stay on one thread: no work stealing, no
//! cross-thread hand-offs. Everything else (the admin listener, the verifier's feeds, config
//! reloads) runs on the runtime that started the gateway.
//!
//! This module must never leave a worker serving after its gateway is dropped: dropping
//! [`Workers`] stops every worker's accept loop and drops its runtime, which closes its
//! connections.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;

/// Pending connections each worker's socket queues before the kernel refuses more.
const BACKLOG: u32 = 1024;

thread_local! {
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// This thread's worker number: 1 to N on a worker, 0 anywhere else.
pub fn current() -> usize {
    WORKER.with(Cell::get)
}

/// The worker count to use: `configured`, else one per CPU.
pub fn count(configured: Option<usize>) -> usize {
    configured.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// `n` listening sockets on `addr` sharing its port (the port the first one got, when `addr`
/// asks for any port). Must be called on a tokio runtime; the sockets come back detached from
/// it, for [`spawn`] to hand one to each worker.
pub fn bind(addr: SocketAddr, n: usize) -> io::Result<(Vec<std::net::TcpListener>, SocketAddr)> {
    let mut bound = addr;
    let mut listeners = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        let socket = if bound.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.set_reuseport(true)?;
        socket.bind(bound)?;
        let listener = socket.listen(BACKLOG)?;
        bound = listener.local_addr()?;
        listeners.push(listener.into_std()?);
    }
    Ok((listeners, bound))
}

/// The running workers; dropping this stops them.
#[derive(Debug)]
pub struct Workers {
    _stop: watch::Sender<()>,
}

/// Starts one thread per listener, each running `serve` on its own listener until the returned
/// [`Workers`] is dropped.
pub fn spawn<F, Fut>(listeners: Vec<std::net::TcpListener>, serve: F) -> io::Result<Workers>
where
    F: Fn(TcpListener) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let (stop, stopped) = watch::channel(());
    for (i, listener) in listeners.into_iter().enumerate() {
        let serve = serve.clone();
        let mut stopped = stopped.clone();
        std::thread::Builder::new()
            .name(format!("gateway-worker-{}", i + 1))
            .spawn(move || {
                WORKER.with(|w| w.set(i + 1));
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, worker = i + 1, "gateway worker could not start its runtime");
                        return;
                    }
                };
                runtime.block_on(async move {
                    let listener = match TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(error = %e, worker = i + 1, "gateway worker could not take its listener");
                            return;
                        }
                    };
                    tokio::select! {
                        () = serve(listener) => {}
                        // Ends when the sender is dropped: the gateway is gone.
                        _ = stopped.changed() => {}
                    }
                });
            })?;
    }
    Ok(Workers { _stop: stop })
}
