//! The project's one HTTP client: `GET path HTTP/1.0` over a plain TCP connection from the
//! calling thread's network namespace, with one success rule (an `HTTP/1.x 2xx` status
//! line). The drill's probes, the lab's client (tests, demo, bench) and the metrics test
//! all use it, so "the site answered" means the same everywhere.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The most of an answer read; a larger one is an error (a probe is not a download).
const MAX_ANSWER: usize = 1 << 20;

/// `GET path` to `addr`; the body of a 2xx answer, read until the server closes.
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<String, String> {
    let answer = exchange(addr, path, timeout, true)?;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .or_else(|| text.split_once("\n\n"))
        .ok_or_else(|| format!("{addr}: no end of headers"))?;
    success(head.as_bytes()).map_err(|why| format!("{addr}: {why}"))?;
    Ok(body.to_owned())
}

/// `GET path` to `addr`; Ok as soon as the status line is a 2xx (the body is not awaited).
pub fn http_check(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(), String> {
    let head = exchange(addr, path, timeout, false)?;
    success(&head).map_err(|why| format!("{addr}: {why}"))
}

/// The one success rule: the first line is `HTTP/<version> 2xx`.
pub fn success(head: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(head);
    let line = text.lines().next().unwrap_or_default();
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(v), Some(code)) if v.starts_with("HTTP/") => {
            if code.len() == 3 && code.starts_with('2') && code.bytes().all(|b| b.is_ascii_digit())
            {
                Ok(())
            } else {
                Err(format!("HTTP status {code}"))
            }
        }
        _ => Err(format!("not an HTTP answer: {line:?}")),
    }
}

/// Sends the request; reads the whole answer (`whole`) or until the status line is complete.
fn exchange(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
    whole: bool,
) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + timeout;
    let mut s =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect {addr}: {e}"))?;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("{addr}: timed out"))
    };
    s.set_write_timeout(Some(left()?))
        .map_err(|e| format!("{addr}: {e}"))?;
    // `addr` displays an IPv6 host in brackets, as the Host header wants it.
    let host = addr.to_string();
    let host = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h);
    s.write_all(
        format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: had-drill\r\n\r\n").as_bytes(),
    )
    .map_err(|e| format!("{addr}: {e}"))?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while whole || !answer.contains(&b'\n') {
        s.set_read_timeout(Some(left()?))
            .map_err(|e| format!("{addr}: {e}"))?;
        let n = s
            .read(&mut buf)
            .map_err(|e| format!("reading from {addr}: {e}"))?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        if answer.len() > MAX_ANSWER {
            return Err(format!("answer from {addr} larger than 1 MiB"));
        }
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, TcpListener};
    use std::thread::{self, JoinHandle};

    /// A one-shot server: answers `answer` and hands back the request it read.
    fn serve(answer: &'static [u8]) -> (SocketAddr, JoinHandle<Vec<u8>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let h = thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut b = [0u8; 512];
            let n = c.read(&mut b).unwrap();
            c.write_all(answer).unwrap();
            b[..n].to_vec()
        });
        (addr, h)
    }

    #[test]
    fn get_returns_the_body_of_any_2xx() {
        let (a, h) = serve(b"HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nhello\n");
        assert_eq!(
            http_get(a, "/metrics?x=1", Duration::from_secs(2)).unwrap(),
            "hello\n"
        );
        let req = h.join().unwrap();
        assert!(
            req.starts_with(b"GET /metrics?x=1 HTTP/1.0\r\nHost: 127.0.0.1\r\n"),
            "{}",
            String::from_utf8_lossy(&req)
        );
        let (a, h) = serve(b"HTTP/1.1 203 Other\n\nnode1\n");
        assert_eq!(http_get(a, "/", Duration::from_secs(2)).unwrap(), "node1\n");
        h.join().unwrap();
    }

    #[test]
    fn refusals_name_the_reason() {
        for (answer, says) in [
            (&b"HTTP/1.0 404 Not Found\r\n\r\nx"[..], "404"),
            (b"HTTP/1.0 2x0 Odd\r\n\r\n", "2x0"),
            (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP answer"),
            (b"HTTP/1.0 200 OK\r\n", "no end of headers"),
        ] {
            let (a, h) = serve(answer);
            let e = http_get(a, "/", Duration::from_secs(2)).unwrap_err();
            assert!(e.contains(says), "{e}");
            h.join().unwrap();
        }
        let (a, h) = serve(b"HTTP/1.1 503 Busy\r\n\r\n");
        let e = http_check(a, "/", Duration::from_secs(2)).unwrap_err();
        assert!(e.contains("503"), "{e}");
        h.join().unwrap();
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(http_check(closed, "/", Duration::from_secs(2)).is_err());
    }

    #[test]
    fn check_does_not_wait_for_the_body() {
        // The server sends the status line and then holds the connection open.
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let a = l.local_addr().unwrap();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let h = thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut b = [0u8; 512];
            let _ = c.read(&mut b).unwrap();
            c.write_all(b"HTTP/1.1 204 No Content\r\n").unwrap();
            let _ = done_rx.recv_timeout(Duration::from_secs(5));
        });
        let t0 = Instant::now();
        assert_eq!(http_check(a, "/", Duration::from_secs(3)), Ok(()));
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        done_tx.send(()).unwrap();
        h.join().unwrap();
    }
}
