//! The `[metrics]` HTTP endpoint: `GET /metrics` answered with what the loop renders. Built for a
//! hostile network: a few connections at a time, a short deadline per connection, a small cap on
//! the request, and nothing but GET of one path; everything else is closed or refused.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Connections served at once; more are closed at accept (a scraper retries next interval).
pub const MAX_CONNECTIONS: usize = 4;
/// Longest request head accepted (request line and headers).
pub const MAX_REQUEST: usize = 4096;
/// Deadline for reading the request and, separately, for writing the answer.
pub const IO_TIMEOUT: Duration = Duration::from_secs(3);

/// A scrape asks the loop for the exposition text.
pub type ScrapeRequest = oneshot::Sender<String>;

/// Binds the endpoint. Failing here is reported by the caller and leaves metrics off: a port
/// conflict must not keep the cluster from running.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves until the process ends, or until this task is dropped: the connections' tasks
/// are its own and end with it.
pub async fn serve(listener: TcpListener, tx: mpsc::Sender<ScrapeRequest>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = tokio::task::JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!("metrics accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let tx = tx.clone();
        conns.spawn(async move {
            let _permit = permit;
            let _ = handle(stream, tx).await;
        });
    }
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Metrics,
    NotFound,
    MethodNotAllowed,
    BadRequest,
}

/// Classifies a request head (bytes up to the blank line). Only the request line matters.
pub fn route(head: &[u8]) -> Route {
    let Some(line) = head.split(|&b| b == b'\n').next() else {
        return Route::BadRequest;
    };
    let line = String::from_utf8_lossy(line);
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    if parts.next().is_some() || !version.starts_with("HTTP/1.") {
        return Route::BadRequest;
    }
    if method != "GET" && method != "HEAD" {
        return Route::MethodNotAllowed;
    }
    let path = target.split('?').next().unwrap_or("");
    if path == "/metrics" {
        Route::Metrics
    } else {
        Route::NotFound
    }
}

async fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
            return Some(buf);
        }
        if buf.len() > MAX_REQUEST {
            return None;
        }
    }
}

async fn handle(mut stream: TcpStream, tx: mpsc::Sender<ScrapeRequest>) -> std::io::Result<()> {
    let head = match tokio::time::timeout(IO_TIMEOUT, read_head(&mut stream)).await {
        Ok(Some(h)) => h,
        // Slow, oversized or closed: drop without an answer.
        _ => return Ok(()),
    };
    let is_head = head.starts_with(b"HEAD ");
    let (status, body) = match route(&head) {
        Route::Metrics => {
            let (otx, orx) = oneshot::channel();
            // The loop is the only place with the state; if it is gone, so are we.
            if tx.send(otx).await.is_err() {
                return Ok(());
            }
            match tokio::time::timeout(IO_TIMEOUT, orx).await {
                Ok(Ok(text)) => ("200 OK", text),
                _ => (
                    "503 Service Unavailable",
                    "the daemon loop did not answer\n".into(),
                ),
            }
        }
        Route::NotFound => ("404 Not Found", "try /metrics\n".into()),
        Route::MethodNotAllowed => ("405 Method Not Allowed", "GET only\n".into()),
        Route::BadRequest => ("400 Bad Request", "bad request\n".into()),
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !is_head {
        out.extend_from_slice(body.as_bytes());
    }
    let _ = tokio::time::timeout(IO_TIMEOUT, stream.write_all(&out)).await;
    let _ = stream.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics
        );
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Route::Metrics);
        assert_eq!(route(b"HEAD /metrics HTTP/1.1\r\n\r\n"), Route::Metrics);
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(
            route(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Route::MethodNotAllowed
        );
        assert_eq!(route(b"GET /metrics\r\n\r\n"), Route::BadRequest);
        assert_eq!(route(b"GET /metrics SPDY/3\r\n\r\n"), Route::BadRequest);
        assert_eq!(route(b"\xff\xfe\r\n\r\n"), Route::BadRequest);
    }

    /// The bounds hold against real sockets: an oversized head and a silent client get no
    /// answer and do not hold a slot; a proper scrape is answered with the loop's text.
    #[tokio::test(flavor = "current_thread")]
    async fn bounded_server_answers_scrapes_and_drops_abuse() {
        let listener = bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, mut rx) = mpsc::channel::<ScrapeRequest>(4);
        // Owned: aborted when the test ends, also on a failed assertion.
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(serve(listener, tx));
        tasks.spawn(async move {
            while let Some(r) = rx.recv().await {
                let _ = r.send("had_up 1\n".into());
            }
        });
        async fn get(addr: SocketAddr, req: &[u8]) -> String {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            s.write_all(req).await.expect("write");
            let mut out = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
            String::from_utf8_lossy(&out).into_owned()
        }
        let ok = get(addr, b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.ends_with("\r\n\r\nhad_up 1\n"), "{ok}");
        let big = vec![b'a'; MAX_REQUEST * 2];
        assert_eq!(get(addr, &big).await, "", "oversized head is dropped");
        // Fill every slot with silent clients; they are cut at IO_TIMEOUT and scrapes resume.
        let mut idle = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            idle.push(TcpStream::connect(addr).await.expect("connect"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t0 = std::time::Instant::now();
        let refused = get(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await;
        assert_eq!(refused, "", "no slot: closed at once");
        tokio::time::sleep(IO_TIMEOUT + Duration::from_millis(300)).await;
        let again = get(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await;
        assert!(again.starts_with("HTTP/1.1 200"), "{again}");
        let nf = get(addr, b"GET /x HTTP/1.1\r\n\r\n").await;
        assert!(nf.starts_with("HTTP/1.1 404"), "{nf}");
        println!("slots freed after {:?}", t0.elapsed());
    }
}
