//! Email: the transport, the sender and the email reconciler. Reads
//! `MAIL_TRANSPORT`, `MAIL_OUTBOX_DIR`, `MAIL_FROM`, `SMTP_HOST`,
//! `SMTP_PORT`, `SMTP_TLS`, `SMTP_USERNAME`, `SMTP_PASSWORD`,
//! `SMTP_TIMEOUT_SECS`, `EMAIL_RECONCILE_CRON`, `EMAIL_RECONCILE_AFTER_SECS`.

use std::{path::PathBuf, time::Duration};

use secrecy::SecretString;

use super::env::{EnvReader, secs};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailTransportKind {
    /// `.eml` files in a folder: the local default, no mail server needed.
    File,
    Smtp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text; only for a local catcher.
    None,
    /// Plain connection upgraded with STARTTLS (required, not opportunistic).
    StartTls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
}

#[derive(Debug, Clone)]
pub struct MailConfig {
    pub transport: MailTransportKind,
    pub outbox_dir: PathBuf,
    pub from: String,
    pub smtp_host: String,
    pub smtp_port: u16,
    pub smtp_tls: SmtpTls,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<SecretString>,
    pub smtp_timeout: Duration,
    /// Cluster-wide schedule of the email reconciler (six fields, UTC).
    pub reconcile_cron: String,
    /// An email still unsent this long after it was queued (or last
    /// requeued) gets a new job: its job was lost, say with Redis's data.
    pub reconcile_after: Duration,
    /// Sends per second across every worker process (0: no limit), and
    /// how many may go at once after a quiet spell.
    pub smtp_max_per_sec: u32,
    pub smtp_burst: u32,
}

impl MailConfig {
    pub(super) fn read(env: &mut EnvReader) -> Self {
        let transport = env.choice_or(
            "MAIL_TRANSPORT",
            MailTransportKind::File,
            &[
                ("file", MailTransportKind::File),
                ("smtp", MailTransportKind::Smtp),
            ],
        );
        let smtp_tls = env.choice_or(
            "SMTP_TLS",
            SmtpTls::StartTls,
            &[
                ("none", SmtpTls::None),
                ("starttls", SmtpTls::StartTls),
                ("tls", SmtpTls::Tls),
            ],
        );
        let default_port = match smtp_tls {
            SmtpTls::None => 25,
            SmtpTls::StartTls => 587,
            SmtpTls::Tls => 465,
        };
        let smtp_username = env.optional("SMTP_USERNAME");
        let smtp_password = env.optional_secret("SMTP_PASSWORD");
        if smtp_username.is_some() != smtp_password.is_some() {
            env.problem(
                if smtp_username.is_some() {
                    "SMTP_PASSWORD"
                } else {
                    "SMTP_USERNAME"
                },
                "SMTP_USERNAME and SMTP_PASSWORD must be set together",
            );
        }
        let from = env.string_or("MAIL_FROM", "Bourse <no-reply@bourse.local>");
        if from.parse::<lettre::message::Mailbox>().is_err() {
            env.problem(
                "MAIL_FROM",
                format!("invalid value {from:?} (expected a mailbox such as Bourse <no-reply@example.com>)"),
            );
        }
        Self {
            transport,
            outbox_dir: PathBuf::from(env.string_or("MAIL_OUTBOX_DIR", "var/mail")),
            from,
            smtp_host: env.string_or("SMTP_HOST", "localhost"),
            smtp_port: env.parse_or("SMTP_PORT", default_port, "a TCP port"),
            smtp_tls,
            smtp_username,
            smtp_password,
            smtp_timeout: secs(env.range_or("SMTP_TIMEOUT_SECS", 10, 1, 600)),
            smtp_max_per_sec: env.range_or("SMTP_MAX_PER_SEC", 0, 0, 1000),
            smtp_burst: env.range_or("SMTP_BURST", 1, 1, 1000),
            reconcile_cron: env.cron_or("EMAIL_RECONCILE_CRON", "*/30 * * * * *"),
            reconcile_after: secs(env.range_or(
                "EMAIL_RECONCILE_AFTER_SECS",
                300,
                1,
                7 * 24 * 3600,
            )),
        }
    }
}
