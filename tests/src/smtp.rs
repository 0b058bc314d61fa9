//! A real SMTP receiver for tests: speaks RFC 5321 (EHLO/HELO, MAIL, RCPT,
//! DATA with dot-unstuffing, RSET, NOOP, QUIT) over TCP on a random local
//! port and keeps what it receives, with when (so a test can count arrivals
//! per second). It can be told to answer the next DATA
//! commands with a temporary failure (451), to test retries.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
};

#[derive(Debug, Clone)]
pub struct ReceivedMail {
    pub from: String,
    pub to: Vec<String>,
    /// The message as transmitted (headers and body), dot-unstuffed.
    pub data: String,
    /// When its DATA ended, by this machine's clock.
    pub received_at: std::time::SystemTime,
}

impl ReceivedMail {
    pub fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.data
            .lines()
            .take_while(|l| !l.is_empty())
            .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
            .map(|l| l[prefix.len()..].trim().to_owned())
    }

    pub fn subject(&self) -> String {
        self.header("Subject").unwrap_or_default()
    }

    /// The body with quoted-printable soft line breaks and escapes undone
    /// (good enough for ASCII and UTF-8 text parts).
    pub fn decoded(&self) -> String {
        let joined = self.data.replace("=\r\n", "").replace("=\n", "");
        let bytes = joined.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'='
                && i + 2 < bytes.len()
                && let Ok(byte) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
            {
                out.push(byte);
                i += 3;
                continue;
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

#[derive(Default)]
struct Inner {
    mails: Mutex<Vec<ReceivedMail>>,
    fail_next_data: AtomicU32,
    /// While set, every DATA command is refused with 451.
    refusing: std::sync::atomic::AtomicBool,
    rejected: AtomicU32,
    /// How long the answer to a message's end waits, in milliseconds (the
    /// message is already stored by then).
    hold_ms: std::sync::atomic::AtomicU64,
}

/// The receiver; stops when dropped.
pub struct SmtpReceiver {
    pub port: u16,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl SmtpReceiver {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind SMTP receiver");
        let port = listener.local_addr().expect("local addr").port();
        let inner = Arc::new(Inner::default());
        let shared = inner.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(session(stream, shared.clone()));
            }
        });
        Self { port, inner, task }
    }

    /// Answers the next `n` DATA commands with `451` (try again later).
    pub fn fail_next(&self, n: u32) {
        self.inner.fail_next_data.store(n, Ordering::SeqCst);
    }

    /// Refuses every message (451, try again later) until called with
    /// `false`: a mail server that is down for a while.
    pub fn refuse(&self, refusing: bool) {
        self.inner.refusing.store(refusing, Ordering::SeqCst);
    }

    /// Stores each message at once but answers its end only `hold` later:
    /// a slow mail server, during which a test can cut something else.
    pub fn hold_answers(&self, hold: std::time::Duration) {
        self.inner.hold_ms.store(
            u64::try_from(hold.as_millis()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
    }

    /// DATA commands refused so far.
    pub fn rejected(&self) -> u32 {
        self.inner.rejected.load(Ordering::SeqCst)
    }

    pub fn mails(&self) -> Vec<ReceivedMail> {
        self.inner
            .mails
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }

    pub fn mails_to(&self, address: &str) -> Vec<ReceivedMail> {
        self.mails()
            .into_iter()
            .filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(address)))
            .collect()
    }

    /// Waits until a mail to `address` arrived and returns it.
    pub async fn wait_for(&self, address: &str, timeout: Duration) -> ReceivedMail {
        crate::eventually(&format!("an email to {address}"), timeout, || async {
            self.mails_to(address).into_iter().next()
        })
        .await
    }
}

impl Drop for SmtpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn session(stream: TcpStream, inner: Arc<Inner>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let reply = |text: &str| format!("{text}\r\n");
    let _ = write
        .write_all(reply("220 bourse-test ESMTP ready").as_bytes())
        .await;
    let mut from = String::new();
    let mut to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let command = line.trim_end().to_owned();
        let upper = command.to_ascii_uppercase();
        let answer = if upper.starts_with("EHLO") {
            "250-bourse-test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 10485760"
                .to_owned()
        } else if upper.starts_with("HELO") {
            "250 bourse-test".to_owned()
        } else if upper.starts_with("MAIL FROM:") {
            from = address_of(&command[10..]);
            to.clear();
            "250 2.1.0 OK".to_owned()
        } else if upper.starts_with("RCPT TO:") {
            to.push(address_of(&command[8..]));
            "250 2.1.5 OK".to_owned()
        } else if upper == "DATA" {
            let fail = inner
                .fail_next_data
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
                || inner.refusing.load(Ordering::SeqCst);
            if fail {
                inner.rejected.fetch_add(1, Ordering::SeqCst);
                "451 4.3.0 temporary failure, try again later".to_owned()
            } else if to.is_empty() {
                "503 5.5.1 no recipients".to_owned()
            } else {
                let _ = write
                    .write_all(b"354 end data with <CR><LF>.<CR><LF>\r\n")
                    .await;
                let mut data = String::new();
                loop {
                    line.clear();
                    match lines.read_line(&mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    let content = line.trim_end_matches(['\r', '\n']);
                    if content == "." {
                        break;
                    }
                    // Dot-stuffing: a leading ".." stands for ".".
                    let content = if content.starts_with("..") {
                        &content[1..]
                    } else {
                        content
                    };
                    data.push_str(content);
                    data.push_str("\r\n");
                }
                if let Ok(mut mails) = inner.mails.lock() {
                    mails.push(ReceivedMail {
                        from: from.clone(),
                        to: std::mem::take(&mut to),
                        data,
                        received_at: std::time::SystemTime::now(),
                    });
                }
                let hold = inner.hold_ms.load(Ordering::SeqCst);
                if hold > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(hold)).await;
                }
                "250 2.0.0 OK queued".to_owned()
            }
        } else if upper == "RSET" {
            from.clear();
            to.clear();
            "250 2.0.0 OK".to_owned()
        } else if upper == "NOOP" {
            "250 2.0.0 OK".to_owned()
        } else if upper == "QUIT" {
            let _ = write.write_all(b"221 2.0.0 bye\r\n").await;
            return;
        } else {
            "502 5.5.2 command not recognized".to_owned()
        };
        if write.write_all(reply(&answer).as_bytes()).await.is_err() {
            return;
        }
    }
}

fn address_of(raw: &str) -> String {
    let raw = raw.trim();
    let inner = raw
        .strip_prefix('<')
        .and_then(|r| r.split('>').next())
        .unwrap_or(raw);
    inner
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}
