//! The bench's one HTTP/1.1 client. Hand-written on purpose: the load
//! generators (`support::load`, `mixed`) send request bytes built ahead on
//! keep-alive connections and time each answer, so the client must add
//! nothing between the send and the status line (no pool, no header
//! parsing beyond `Content-Length`, no allocation per request). It reads
//! `Content-Length` bodies only; the API never answers these requests
//! chunked, and a chunked answer fails the run instead of being misread.

use anyhow::bail;
use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader},
    net::{
        TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
};

/// A keep-alive connection to the API on 127.0.0.1.
pub struct Connection {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    line: String,
    body: Vec<u8>,
}

impl Connection {
    pub async fn open(port: u16) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        let (read, writer) = stream.into_split();
        Ok(Self {
            reader: BufReader::new(read),
            writer,
            line: String::new(),
            body: Vec::new(),
        })
    }

    /// Sends `request` and reads the whole answer: its status.
    pub async fn exchange(&mut self, request: &[u8]) -> anyhow::Result<u16> {
        self.writer.write_all(request).await?;
        let mut status = 0u16;
        let mut length = 0usize;
        loop {
            self.line.clear();
            if self.reader.read_line(&mut self.line).await? == 0 {
                bail!("connection closed");
            }
            if self.line.starts_with("HTTP/1.1 ") {
                status = self
                    .line
                    .get(9..12)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
            }
            let lower = self.line.to_ascii_lowercase();
            if let Some(value) = lower.strip_prefix("content-length:") {
                length = value.trim().parse().unwrap_or(0);
            }
            if lower.starts_with("transfer-encoding:") {
                bail!("chunked answers are not supported here");
            }
            if self.line == "\r\n" {
                break;
            }
        }
        self.body.resize(length, 0);
        self.reader.read_exact(&mut self.body).await?;
        Ok(status)
    }
}

/// One request on a fresh connection: the status line's code and the body.
pub async fn request_once(port: u16, request: &[u8]) -> Option<(u16, String)> {
    request_at(&format!("127.0.0.1:{port}"), request).await
}

/// [`request_once`] to `addr` (`host:port`), another host's.
pub async fn request_at(addr: &str, request: &[u8]) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    stream.write_all(request).await.ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.ok()?;
    let status = answer.get(9..12)?.parse().ok()?;
    Some((
        status,
        answer
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or_default()
            .to_owned(),
    ))
}
