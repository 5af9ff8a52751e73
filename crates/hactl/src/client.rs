//! Talking to `had` over its control socket: one JSON request line, one JSON answer line.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use ha_control::{Request, Response};

/// Exit codes (stable, for monitoring scripts; see docs/hactl.md).
pub mod exit {
    /// The command did what was asked.
    pub const OK: u8 = 0;
    /// had answered but refused or failed (the reason is on stderr).
    pub const FAIL: u8 = 1;
    /// had is not running (its socket does not answer).
    pub const NOT_RUNNING: u8 = 3;
    /// `check`: the configuration is invalid.
    pub const CONFIG: u8 = 6;
}

/// Why a request got no answer.
#[derive(Debug)]
pub enum ClientError {
    /// The socket does not answer: had is not running.
    NotRunning(String),
    /// Anything else (I/O mid-request, unreadable answer).
    Failed(String),
}

impl ClientError {
    /// The hactl exit code for this error.
    pub fn code(&self) -> u8 {
        match self {
            Self::NotRunning(_) => exit::NOT_RUNNING,
            Self::Failed(_) => exit::FAIL,
        }
    }
    /// The message for stderr.
    pub fn message(&self) -> &str {
        match self {
            Self::NotRunning(m) | Self::Failed(m) => m,
        }
    }
}

/// Send `req` and read the answer, waiting at most `timeout` for it.
pub fn request(socket: &Path, req: &Request, timeout: Duration) -> Result<Response, ClientError> {
    let mut s = UnixStream::connect(socket).map_err(|e| {
        ClientError::NotRunning(format!(
            "cannot reach had at {}: {e}\n       is had running? (`--socket` selects another socket)",
            socket.display()
        ))
    })?;
    let io = |e: std::io::Error| {
        ClientError::Failed(format!("talking to had at {}: {e}", socket.display()))
    };
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    let line = ha_control::encode_request(req).map_err(|e| ClientError::Failed(e.to_string()))?;
    s.write_all(&line).map_err(io)?;
    let mut reply = String::new();
    BufReader::new(&s).read_line(&mut reply).map_err(io)?;
    ha_control::decode_response(&reply).map_err(ClientError::Failed)
}
