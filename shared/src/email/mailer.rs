//! Where rendered emails go: an SMTP server (lettre, STARTTLS or TLS with
//! rustls) or, by default for local runs, `.eml` files in a folder.

use lettre::{
    AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, MultiPart},
    transport::smtp::authentication::Credentials,
};
use secrecy::ExposeSecret;

use super::render::Rendered;
use crate::config::{MailConfig, MailTransportKind, SmtpTls};

#[derive(Clone)]
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    File(AsyncFileTransport<Tokio1Executor>),
}

/// Sends emails. Cheap to clone (the SMTP transport pools connections).
#[derive(Clone)]
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.transport {
            Transport::Smtp(_) => "smtp",
            Transport::File(_) => "file",
        };
        f.debug_struct("Mailer").field("transport", &kind).finish()
    }
}

/// Why a send failed, classified for the retry decision.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// Worth retrying: connection trouble, timeouts, 4xx answers.
    #[error("temporary mail failure: {0}")]
    Transient(String),
    /// Retrying cannot help: a 5xx answer or an unusable address.
    #[error("permanent mail failure: {0}")]
    Permanent(String),
}

impl Mailer {
    /// Builds the configured transport. Nothing is connected yet; the file
    /// transport's folder is created.
    pub fn from_config(config: &MailConfig) -> Result<Self, String> {
        let from: Mailbox = config.from.parse().map_err(|e| format!("MAIL_FROM: {e}"))?;
        let transport = match config.transport {
            MailTransportKind::File => {
                std::fs::create_dir_all(&config.outbox_dir).map_err(|e| {
                    format!(
                        "MAIL_OUTBOX_DIR: cannot create {}: {e}",
                        config.outbox_dir.display()
                    )
                })?;
                Transport::File(AsyncFileTransport::<Tokio1Executor>::new(
                    &config.outbox_dir,
                ))
            }
            MailTransportKind::Smtp => {
                let host = config.smtp_host.as_str();
                let builder = match config.smtp_tls {
                    SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
                    SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                        .map_err(|e| format!("SMTP_HOST: {e}"))?,
                    SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                        .map_err(|e| format!("SMTP_HOST: {e}"))?,
                };
                let mut builder = builder
                    .port(config.smtp_port)
                    .timeout(Some(config.smtp_timeout));
                if let (Some(user), Some(password)) = (&config.smtp_username, &config.smtp_password)
                {
                    builder = builder.credentials(Credentials::new(
                        user.clone(),
                        password.expose_secret().to_owned(),
                    ));
                }
                Transport::Smtp(builder.build())
            }
        };
        Ok(Self { transport, from })
    }

    /// Builds the MIME message (`multipart/alternative`: text, then HTML).
    pub fn compose(&self, to: &str, mail: &Rendered) -> Result<Message, SendError> {
        let to: Mailbox = to
            .parse()
            .map_err(|e| SendError::Permanent(format!("bad recipient address: {e}")))?;
        Message::builder()
            // A Message-ID (from our hostname) keeps spam filters content and
            // lets operators trace one email across systems.
            .message_id(None)
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .multipart(MultiPart::alternative_plain_html(
                mail.text.clone(),
                mail.html.clone(),
            ))
            .map_err(|e| SendError::Permanent(format!("cannot build message: {e}")))
    }

    /// Sends one message.
    pub async fn send(&self, message: Message) -> Result<(), SendError> {
        match &self.transport {
            Transport::Smtp(smtp) => smtp.send(message).await.map(|_| ()).map_err(|e| {
                if e.is_permanent() {
                    SendError::Permanent(e.to_string())
                } else {
                    SendError::Transient(e.to_string())
                }
            }),
            Transport::File(file) => file
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| SendError::Transient(e.to_string())),
        }
    }
}
