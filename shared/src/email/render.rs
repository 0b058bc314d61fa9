//! Email templates: a subject, a text body and an HTML body per email,
//! compiled into the binary so a worker renders the same mail from any
//! directory. HTML templates are auto-escaped by minijinja.

use std::sync::LazyLock;

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

/// A kind of email and the variables its templates need. The `NAME` is
/// stored with each queued email, so it must never change once deployed.
pub trait EmailTemplate: Serialize {
    const NAME: &'static str;
}

/// The verification code sent after registration and on resend.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyEmail {
    pub username: String,
    pub email: String,
    pub code: String,
    pub expires_minutes: u64,
}

impl EmailTemplate for VerifyEmail {
    const NAME: &'static str = "verify_email";
}

/// The code that lets a user set a new password without the old one.
#[derive(Debug, Clone, Serialize)]
pub struct PasswordReset {
    pub username: String,
    pub code: String,
    pub expires_minutes: u64,
}

impl EmailTemplate for PasswordReset {
    const NAME: &'static str = "password_reset";
}

/// Notice sent after a password change or reset.
#[derive(Debug, Clone, Serialize)]
pub struct PasswordChanged {
    pub username: String,
    /// When, as shown to the user (UTC).
    pub changed_at: String,
}

impl EmailTemplate for PasswordChanged {
    const NAME: &'static str = "password_changed";
}

/// Notice to the old address after the account's email was changed: the
/// owner learns of it even when someone else made the change.
#[derive(Debug, Clone, Serialize)]
pub struct EmailChanged {
    pub username: String,
    /// The new address, partly hidden (`a***@example.com`).
    pub new_address: String,
    /// When, as shown to the user (UTC).
    pub changed_at: String,
}

impl EmailTemplate for EmailChanged {
    const NAME: &'static str = "email_changed";
}

/// A bet settled (or was void): the outcome and the money.
#[derive(Debug, Clone, Serialize)]
pub struct BetSettled {
    pub username: String,
    pub symbol: String,
    pub direction: String,
    /// `settled` or `void`.
    pub status: String,
    /// `W`, `L` or `D`; empty when void.
    pub result: String,
    pub stake: String,
    pub leverage: i32,
    pub start_price: String,
    pub end_price: String,
    pub payout: String,
    pub profit: String,
    /// As shown to the user (UTC).
    pub settles_at: String,
    /// Closed early: an observation reached the liquidation price.
    pub liquidated: bool,
    pub liquidation_price: String,
    /// When that observation was made (UTC); empty unless liquidated.
    pub liquidated_at: String,
}

impl EmailTemplate for BetSettled {
    const NAME: &'static str = "bet_settled";
}

/// A price alert triggered: what was watched and the price that crossed it.
#[derive(Debug, Clone, Serialize)]
pub struct PriceAlert {
    pub username: String,
    pub symbol: String,
    /// `above` or `below`.
    pub direction: String,
    pub target_price: String,
    /// The observed price that crossed the target.
    pub price: String,
    /// When we received that price, as shown to the user (UTC).
    pub observed_at: String,
}

impl EmailTemplate for PriceAlert {
    const NAME: &'static str = "price_alert";
}

/// A wallet could not pay its monthly fee and is blocked until a credit
/// covers it.
#[derive(Debug, Clone, Serialize)]
pub struct WalletBlocked {
    pub username: String,
    pub currency: String,
    pub wallet_number: String,
    /// The fee in the wallet's currency.
    pub fee: String,
    pub balance: String,
    /// The fee as configured.
    pub fee_amount: String,
    pub fee_currency: String,
}

impl EmailTemplate for WalletBlocked {
    const NAME: &'static str = "wallet_blocked";
}

/// A webhook endpoint failed every delivery for `WEBHOOK_DISABLE_AFTER_SECS`
/// and was disabled.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookDisabled {
    pub username: String,
    pub url: String,
    pub endpoint_id: String,
    /// How long it failed, in words ("1 day", "2 hours").
    pub failing_for: String,
    pub last_error: String,
}

impl EmailTemplate for WebhookDisabled {
    const NAME: &'static str = "webhook_disabled";
}

macro_rules! template_files {
    ($name:literal) => {
        (
            $name,
            include_str!(concat!("templates/", $name, "/subject.txt")),
            include_str!(concat!("templates/", $name, "/body.txt")),
            include_str!(concat!("templates/", $name, "/body.html")),
        )
    };
}

/// Every template name and its three files (a missing file fails the
/// build), for the startup check and tests.
const TEMPLATES: &[(&str, &str, &str, &str)] = &[
    template_files!("verify_email"),
    template_files!("password_reset"),
    template_files!("password_changed"),
    template_files!("email_changed"),
    template_files!("bet_settled"),
    template_files!("price_alert"),
    template_files!("wallet_blocked"),
    template_files!("webhook_disabled"),
];

static ENVIRONMENT: LazyLock<Result<Environment<'static>, minijinja::Error>> =
    LazyLock::new(build_environment);

fn build_environment() -> Result<Environment<'static>, minijinja::Error> {
    let mut env = Environment::new();
    // A variable missing from the context is a bug, not an empty string in a
    // customer's inbox.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.add_template("base.txt", include_str!("templates/base.txt"))?;
    env.add_template("base.html", include_str!("templates/base.html"))?;
    for (name, subject, text, html) in TEMPLATES {
        env.add_template_owned(format!("{name}/subject.txt"), *subject)?;
        env.add_template_owned(format!("{name}/body.txt"), *text)?;
        env.add_template_owned(format!("{name}/body.html"), *html)?;
    }
    Ok(env)
}

/// A rendered email, ready to be put in a MIME message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("unknown email template {0:?}")]
    UnknownTemplate(String),
    #[error("email template error: {0}")]
    Template(String),
}

/// Renders template `name` with `context` (the stored JSON of an
/// [`EmailTemplate`] struct) plus the site-wide `public_url`.
pub fn render(
    name: &str,
    context: &serde_json::Value,
    public_url: &str,
) -> Result<Rendered, RenderError> {
    if !TEMPLATES.iter().any(|(known, ..)| *known == name) {
        return Err(RenderError::UnknownTemplate(name.to_owned()));
    }
    let env = ENVIRONMENT
        .as_ref()
        .map_err(|e| RenderError::Template(e.to_string()))?;
    let mut vars = match context {
        serde_json::Value::Object(map) => map.clone(),
        _ => return Err(RenderError::Template("context is not an object".into())),
    };
    vars.insert("public_url".into(), serde_json::Value::from(public_url));
    let render_one = |file: &str| -> Result<String, RenderError> {
        env.get_template(&format!("{name}/{file}"))
            .and_then(|t| t.render(minijinja::value::Serde(&vars)))
            .map_err(|e| RenderError::Template(format!("{name}/{file}: {e:#}")))
    };
    Ok(Rendered {
        // A subject is one line whatever the template's trailing newline.
        subject: render_one("subject.txt")?.trim().replace(['\r', '\n'], " "),
        text: render_one("body.txt")?,
        html: render_one("body.html")?,
    })
}

fn sample<T: EmailTemplate>(mail: &T) -> Result<(&'static str, serde_json::Value), RenderError> {
    serde_json::to_value(mail)
        .map(|context| (T::NAME, context))
        .map_err(|e| RenderError::Template(e.to_string()))
}

/// One sample of every template: rendered at worker start-up
/// ([`self_check`]) and snapshot-tested, so a change to an email shows in
/// review.
fn samples() -> Result<Vec<(&'static str, serde_json::Value)>, RenderError> {
    let samples = vec![
        sample(&VerifyEmail {
            username: "sample".into(),
            email: "sample@example.com".into(),
            code: "123456".into(),
            expires_minutes: 15,
        })?,
        sample(&PasswordReset {
            username: "sample".into(),
            code: "123456".into(),
            expires_minutes: 15,
        })?,
        sample(&BetSettled {
            username: "sample".into(),
            symbol: "BTC".into(),
            direction: "up".into(),
            status: "settled".into(),
            result: "W".into(),
            stake: "10.00".into(),
            leverage: 5,
            start_price: "43000".into(),
            end_price: "43100".into(),
            payout: "10.11".into(),
            profit: "0.11".into(),
            settles_at: "2026-01-01 12:00:00 UTC".into(),
            liquidated: false,
            liquidation_price: "34400".into(),
            liquidated_at: String::new(),
        })?,
        sample(&PasswordChanged {
            username: "sample".into(),
            changed_at: "2026-01-01 12:00 UTC".into(),
        })?,
        sample(&EmailChanged {
            username: "sample".into(),
            new_address: "s***@example.com".into(),
            changed_at: "2026-01-01 12:00 UTC".into(),
        })?,
        sample(&PriceAlert {
            username: "sample".into(),
            symbol: "BTC".into(),
            direction: "above".into(),
            target_price: "50000".into(),
            price: "50012.5".into(),
            observed_at: "2026-01-01 12:00:00 UTC".into(),
        })?,
        sample(&WalletBlocked {
            username: "sample".into(),
            currency: "USD".into(),
            wallet_number: "1234567890".into(),
            fee: "0.42".into(),
            balance: "0.10".into(),
            fee_amount: "200".into(),
            fee_currency: "KZT".into(),
        })?,
        sample(&WebhookDisabled {
            username: "sample".into(),
            url: "https://hooks.example.com/bourse".into(),
            endpoint_id: "0193a1b2-0000-7000-8000-000000000000".into(),
            failing_for: "1 day".into(),
            last_error: "the endpoint answered 500".into(),
        })?,
    ];
    if samples.len() != TEMPLATES.len() {
        return Err(RenderError::Template("a template has no sample".into()));
    }
    Ok(samples)
}

/// Renders every template once with sample data; used at worker start-up so
/// a broken template fails the deploy, not the first customer email.
pub fn self_check() -> Result<(), RenderError> {
    for (name, context) in samples()? {
        render(name, &context, "http://localhost")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verify_context(username: &str) -> serde_json::Value {
        serde_json::to_value(VerifyEmail {
            username: username.into(),
            email: "ada@example.com".into(),
            code: "042424".into(),
            expires_minutes: 15,
        })
        .unwrap()
    }

    #[test]
    fn verification_email_has_the_code_in_every_part() {
        let mail = render("verify_email", &verify_context("ada"), "http://bourse.test").unwrap();
        assert_eq!(mail.subject, "Your Bourse verification code: 042424");
        assert!(mail.text.contains("Hello ada,"));
        assert!(mail.text.contains("    042424\n"));
        assert!(mail.text.contains("expires in 15 minutes"));
        assert!(mail.text.contains("http://bourse.test"));
        assert!(mail.html.contains(">042424</p>"));
        assert!(mail.html.starts_with("<!doctype html>"));
    }

    #[test]
    fn price_alert_email_says_symbol_target_direction_and_price() {
        let context = serde_json::to_value(PriceAlert {
            username: "ada".into(),
            symbol: "ETH".into(),
            direction: "below".into(),
            target_price: "2000".into(),
            price: "1999.5".into(),
            observed_at: "2026-01-01 12:00:00 UTC".into(),
        })
        .unwrap();
        let mail = render("price_alert", &context, "http://x").unwrap();
        assert_eq!(mail.subject, "ETH is at or below 2000 USD: now 1999.5 USD");
        assert!(mail.text.contains("Target:         below 2000 USD"));
        assert!(
            mail.text
                .contains("Observed price: 1999.5 USD (at 2026-01-01 12:00:00 UTC)")
        );
        assert!(mail.html.contains("<strong>1999.5 USD</strong>"));
    }

    #[test]
    fn a_liquidated_bet_email_says_where_and_when_it_closed() {
        let context = serde_json::to_value(BetSettled {
            username: "ada".into(),
            symbol: "BTC".into(),
            direction: "up".into(),
            status: "settled".into(),
            result: "L".into(),
            stake: "10.00".into(),
            leverage: 5,
            start_price: "43000".into(),
            end_price: "34390".into(),
            payout: "0.00".into(),
            profit: "-10.00".into(),
            settles_at: "2026-01-01 12:00:00.000 UTC".into(),
            liquidated: true,
            liquidation_price: "34400".into(),
            liquidated_at: "2026-01-01 11:20:05.120 UTC".into(),
        })
        .unwrap();
        let mail = render("bet_settled", &context, "http://x").unwrap();
        assert_eq!(
            mail.subject,
            "Your BTC bet was liquidated at 34390 USD: -10.00 USD"
        );
        assert!(mail.text.contains("has been liquidated"), "{}", mail.text);
        assert!(mail.text.contains(
            "BTC reached 34390 USD at 2026-01-01 11:20:05.120 UTC, at or past your\nliquidation price of 34400 USD"
        ), "{}", mail.text);
        assert!(mail.html.contains("liquidation price of 34400 USD"));
        assert!(mail.html.contains("<strong>0.00 USD</strong>"));
    }

    #[test]
    fn html_is_escaped_and_text_is_not() {
        let mail = render("verify_email", &verify_context("<b>ada</b>"), "http://x").unwrap();
        assert!(
            mail.html.contains("Hello &lt;b&gt;ada&lt;"),
            "{}",
            mail.html
        );
        assert!(!mail.html.contains("<b>ada</b>"));
        assert!(mail.text.contains("Hello <b>ada</b>,"));
    }

    #[test]
    fn missing_variables_and_unknown_templates_are_errors() {
        let err = render(
            "verify_email",
            &serde_json::json!({"username": "x"}),
            "http://x",
        );
        assert!(matches!(err, Err(RenderError::Template(_))));
        let err = render("nope", &serde_json::json!({}), "http://x");
        assert!(matches!(err, Err(RenderError::UnknownTemplate(_))));
    }

    #[test]
    fn reset_and_change_emails_say_what_happened() {
        let reset = serde_json::to_value(PasswordReset {
            username: "ada".into(),
            code: "314159".into(),
            expires_minutes: 15,
        })
        .unwrap();
        let mail = render("password_reset", &reset, "http://x").unwrap();
        assert_eq!(mail.subject, "Your Bourse password reset code: 314159");
        assert!(mail.text.contains("    314159\n"));
        let changed = serde_json::to_value(PasswordChanged {
            username: "ada".into(),
            changed_at: "2026-11-23 10:00 UTC".into(),
        })
        .unwrap();
        let mail = render("password_changed", &changed, "http://x").unwrap();
        assert_eq!(mail.subject, "Your Bourse password was changed");
        assert!(mail.html.contains("2026-11-23 10:00 UTC"));
    }

    #[test]
    fn every_template_renders() {
        self_check().unwrap();
    }

    /// Each email as its reader gets it, subject, text and HTML: a change
    /// to a template or its data shows as a diff of its snapshot under
    /// `snapshots/` (`cargo insta review`, or `INSTA_UPDATE=always`).
    #[test]
    fn every_email_matches_its_snapshot() {
        for (name, context) in samples().unwrap() {
            let mail = render(name, &context, "https://bourse.example").unwrap();
            let shown = format!(
                "Subject: {}\n\n----- text/plain -----\n{}\n----- text/html -----\n{}",
                mail.subject, mail.text, mail.html
            );
            insta::assert_snapshot!(name, shown);
        }
    }
}
