//! Signing deliveries: `Bourse-Signature: t=<unix seconds>,v1=<hex>`, where
//! the hex is HMAC-SHA256, keyed with the endpoint's secret, of the
//! timestamp, a dot and the exact body bytes (`"{t}.{body}"`). Receivers
//! recompute it, compare in constant time and refuse old timestamps, so a
//! captured delivery cannot be replayed later or altered.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The header's name.
pub const HEADER: &str = "Bourse-Signature";

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length.
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `Bourse-Signature` value of `body` sent at `timestamp`.
pub fn header(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let digest = mac(secret, timestamp, body).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex::encode(digest))
}

/// Whether `header` signs `body` with `secret` at a time within
/// `tolerance_secs` of `now`: what a receiver checks. Any `v1` entry may
/// match (several are sent while a secret is being rolled).
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64, tolerance_secs: i64) -> bool {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => signatures.extend(hex::decode(v).ok()),
            _ => {}
        }
    }
    let Some(timestamp) = timestamp else {
        return false;
    };
    if (now - timestamp).abs() > tolerance_secs {
        return false;
    }
    signatures
        .iter()
        .any(|signature| mac(secret, timestamp, body).verify_slice(signature).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_3c9f1b";

    #[test]
    fn a_signature_is_hmac_sha256_of_the_timestamp_and_body() {
        // Computed apart, as a receiver would:
        // printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_3c9f1b
        let body = br#"{"a":1}"#;
        assert_eq!(
            header(SECRET, 1_700_000_000, body),
            "t=1700000000,v1=d1710bc7b61367eec79ec147f2f677b6892956ae7c281577a0cd7868d6a4251a"
        );
        let signed = header(SECRET, 1_700_000_000, body);
        assert!(verify(SECRET, &signed, body, 1_700_000_100, 300));
    }

    #[test]
    fn altered_bodies_other_secrets_old_timestamps_and_garbage_fail() {
        let body = br#"{"id":"evt_1"}"#;
        let signed = header(SECRET, 1_700_000_000, body);
        assert!(!verify(
            SECRET,
            &signed,
            br#"{"id":"evt_2"}"#,
            1_700_000_000,
            300
        ));
        assert!(!verify("whsec_other", &signed, body, 1_700_000_000, 300));
        assert!(!verify(SECRET, &signed, body, 1_700_000_301, 300));
        for garbage in [
            "",
            "t=1700000000",
            "v1=00",
            "t=x,v1=zz",
            "t=1700000000,v1=00",
        ] {
            assert!(
                !verify(SECRET, garbage, body, 1_700_000_000, 300),
                "{garbage}"
            );
        }
        // A second v1 entry (a secret being rolled) may be the one.
        let rolled = format!("{signed},v1={}", "ab".repeat(32));
        assert!(verify(SECRET, &rolled, body, 1_700_000_000, 300));
    }
}
