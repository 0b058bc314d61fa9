//! A webhook endpoint's URL: `https` (or `http` where private addresses
//! are allowed, for local receivers), a host, no credentials, no fragment,
//! at most 2,048 characters.

use reqwest::Url;

/// Longest URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// A URL deliveries may be POSTed to, once its host resolves to allowed
/// addresses (see [`super::address::resolve`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub url: Url,
    pub host: String,
    pub port: u16,
}

/// Parses and checks `raw`; the error says what is wrong, for the `url`
/// field.
pub fn parse(raw: &str, allow_http: bool) -> Result<Target, String> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > MAX_URL_LEN {
        return Err(format!("must be a URL of 1 to {MAX_URL_LEN} characters"));
    }
    let url = Url::parse(raw).map_err(|_| "must be an absolute URL".to_owned())?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        _ if allow_http => return Err("must be an https or http URL".into()),
        _ => return Err("must be an https URL".into()),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry a user name or password".into());
    }
    if url.fragment().is_some() {
        return Err("must not have a fragment (#...)".into());
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| "must name a host".to_owned())?
        .to_owned();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| "must name a port".to_owned())?;
    Ok(Target { url, host, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_urls_with_a_host_pass_and_others_say_why_not() {
        let target = parse(" https://hooks.example.com/bourse?x=1 ", false).unwrap();
        assert_eq!(target.host, "hooks.example.com");
        assert_eq!(target.port, 443);
        assert_eq!(target.url.as_str(), "https://hooks.example.com/bourse?x=1");
        assert_eq!(parse("https://[::1]:8443/", false).unwrap().host, "[::1]");
        assert_eq!(parse("http://127.0.0.1:9000/h", true).unwrap().port, 9000);
        for (raw, why) in [
            ("", "1 to 2048"),
            ("hooks.example.com/x", "absolute URL"),
            ("http://hooks.example.com/", "https URL"),
            ("ftp://hooks.example.com/", "https URL"),
            (
                "https://user:pw@hooks.example.com/",
                "user name or password",
            ),
            ("https://hooks.example.com/#top", "fragment"),
            ("file:///etc/passwd", "https URL"),
        ] {
            let error = parse(raw, false).unwrap_err();
            assert!(error.contains(why), "{raw}: {error}");
        }
        assert!(
            parse(
                &format!("https://h.example/{}", "a".repeat(MAX_URL_LEN)),
                false
            )
            .is_err()
        );
        assert!(
            parse("gopher://h.example/", true)
                .unwrap_err()
                .contains("https or http")
        );
    }
}
