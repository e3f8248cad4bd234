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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn workers_share_one_port_serve_on_their_own_threads_and_stop_when_dropped() {
        let (listeners, addr) = bind("127.0.0.1:0".parse().expect("addr"), 3).expect("bind");
        assert_eq!(listeners.len(), 3);
        assert_ne!(addr.port(), 0);
        assert!(listeners
            .iter()
            .all(|l| l.local_addr().expect("addr") == addr));
        // Each accepted connection is answered with the number of the worker that took it.
        let workers = spawn(listeners, |l: TcpListener| async move {
            while let Ok((mut s, _)) = l.accept().await {
                use tokio::io::AsyncWriteExt;
                let _ = s.write_all(&[u8::try_from(current()).unwrap_or(0)]).await;
            }
        })
        .expect("spawn");
        assert_eq!(current(), 0, "the test's own thread is no worker");
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..60 {
            use tokio::io::AsyncReadExt;
            let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let mut b = [0u8; 1];
            s.read_exact(&mut b).await.expect("worker number");
            seen.insert(b[0]);
        }
        assert!(seen.iter().all(|w| (1..=3).contains(w)), "{seen:?}");
        assert!(seen.len() > 1, "the kernel spread connections: {seen:?}");
        drop(workers);
        // Stopped: the sockets close with their runtimes.
        let mut refused = false;
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(addr).await.is_err() {
                refused = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(refused, "workers still accepting after drop");
    }

    #[test]
    fn the_default_is_one_worker_per_cpu() {
        assert_eq!(count(Some(3)), 3);
        assert!(count(None) >= 1);
    }
}
