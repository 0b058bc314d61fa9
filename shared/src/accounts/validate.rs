//! Input rules for accounts (PRODUCT.md §3). Parsing returns every field's
//! problem at once, so a form can show them all.

use std::collections::BTreeMap;

use crate::password::{MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS};

/// Field name → human-readable problem; becomes the `errors` member of a 400.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(pub BTreeMap<String, String>);

impl FieldErrors {
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0
            .entry(field.to_owned())
            .or_insert_with(|| message.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when nothing was added.
    pub fn into_result<T>(self, value: T) -> Result<T, FieldErrors> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

/// A username as stored: 3–32 of `[a-z0-9_]`. Input is matched
/// case-insensitively, so `Ada_1` becomes `ada_1`.
pub fn username(raw: &str) -> Result<String, &'static str> {
    let lower = raw.to_ascii_lowercase();
    let valid_chars = lower
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !(3..=32).contains(&lower.len()) || !valid_chars {
        return Err("must be 3 to 32 characters: letters a-z, digits and underscores");
    }
    Ok(lower)
}

/// An email address we can deliver to: `local@domain.tld`, at most 254
/// characters, no spaces. Kept as typed (trimmed); uniqueness and lookups
/// ignore case.
pub fn email(raw: &str) -> Result<String, &'static str> {
    const MESSAGE: &str = "must be a valid email address such as name@example.com";
    let email = raw.trim();
    if email.is_empty()
        || email.len() > 254
        || email.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(MESSAGE);
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return Err(MESSAGE);
    };
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()));
    if local.is_empty()
        || local.len() > 64
        || !domain_ok
        || email.parse::<lettre::Address>().is_err()
    {
        return Err(MESSAGE);
    }
    Ok(email.to_owned())
}

/// A new password: at least 8 characters and at most 72 bytes (bcrypt's
/// limit; longer input would be silently truncated).
pub fn new_password(raw: &str) -> Result<(), &'static str> {
    if raw.chars().count() < MIN_PASSWORD_CHARS {
        return Err("must be at least 8 characters");
    }
    if raw.len() > MAX_PASSWORD_BYTES {
        return Err("must be at most 72 bytes");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert_eq!(username("Ada_99").unwrap(), "ada_99");
        for bad in ["ab", "a-b-c", "ada lovelace", "ÄDA", &"a".repeat(33), ""] {
            assert!(username(bad).is_err(), "{bad:?}");
        }
        assert!(username(&"a".repeat(32)).is_ok());
    }

    #[test]
    fn emails() {
        assert_eq!(email("  Ada@Example.com ").unwrap(), "Ada@Example.com");
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "ada@exa mple.com",
            "ada@-example.com",
            "ada@example.c0m",
            "a b@example.com",
            "ada@@example.com",
        ] {
            assert!(email(bad).is_err(), "{bad:?}");
        }
        assert!(email(&format!("{}@example.com", "a".repeat(65))).is_err());
    }

    #[test]
    fn passwords() {
        assert!(new_password("1234567").is_err());
        assert!(new_password("12345678").is_ok());
        assert!(new_password(&"é".repeat(36)).is_ok());
        assert!(new_password(&"é".repeat(37)).is_err());
    }
}
