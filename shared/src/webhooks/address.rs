//! Where a webhook may be delivered: no server-side request forgery.
//!
//! An endpoint's host must resolve to public addresses only. Loopback and
//! private ranges (RFC 1918, carrier-grade NAT, IPv6 unique local) are
//! admitted only where `WEBHOOK_ALLOW_PRIVATE_ADDRESSES=true` (tests, local
//! runs). Link-local addresses (169.254.0.0/16 with the cloud metadata
//! service at 169.254.169.254, fe80::/10), cloud metadata addresses outside
//! them, multicast, unspecified, broadcast, documentation and reserved
//! ranges are refused always. IPv4 addresses inside IPv6 (mapped,
//! compatible, NAT64) are judged as the IPv4 address they carry.
//!
//! The check runs at registration and again at each delivery, on the
//! addresses the delivery then connects to, so a name that later resolves
//! elsewhere (DNS rebinding) does not get through.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use std::time::Duration;

/// How an address may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Anyone's: deliveries may go there.
    Public,
    /// Loopback or a private network: only where configured.
    Private,
    /// Never: link-local, metadata, multicast, reserved.
    Forbidden,
}

/// Cloud metadata services outside the link-local ranges: Alibaba's
/// (inside carrier-grade NAT space) and AWS's IPv6 one (inside unique
/// local space).
const METADATA_V4: [Ipv4Addr; 1] = [Ipv4Addr::new(100, 100, 100, 200)];
const METADATA_V6: [Ipv6Addr; 1] = [Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)];

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, prefix: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    u128::from(ip) & mask == u128::from(net) & mask
}

fn reach_v4(ip: Ipv4Addr) -> Reach {
    if METADATA_V4.contains(&ip) {
        return Reach::Forbidden;
    }
    let forbidden: [([u8; 4], u32); 10] = [
        ([0, 0, 0, 0], 8),       // "this network", unspecified
        ([169, 254, 0, 0], 16),  // link-local, cloud metadata
        ([192, 0, 0, 0], 24),    // IETF protocol assignments
        ([192, 0, 2, 0], 24),    // documentation
        ([198, 18, 0, 0], 15),   // benchmarking
        ([198, 51, 100, 0], 24), // documentation
        ([203, 0, 113, 0], 24),  // documentation
        ([224, 0, 0, 0], 4),     // multicast
        ([240, 0, 0, 0], 4),     // reserved, broadcast
        ([192, 88, 99, 0], 24),  // 6to4 relay anycast (deprecated)
    ];
    if forbidden.iter().any(|&(net, p)| in_v4(ip, net, p)) {
        return Reach::Forbidden;
    }
    let private: [([u8; 4], u32); 5] = [
        ([127, 0, 0, 0], 8),    // loopback
        ([10, 0, 0, 0], 8),     // RFC 1918
        ([172, 16, 0, 0], 12),  // RFC 1918
        ([192, 168, 0, 0], 16), // RFC 1918
        ([100, 64, 0, 0], 10),  // carrier-grade NAT
    ];
    if private.iter().any(|&(net, p)| in_v4(ip, net, p)) {
        return Reach::Private;
    }
    Reach::Public
}

fn reach_v6(ip: Ipv6Addr) -> Reach {
    // IPv4 carried in IPv6: mapped (::ffff:a.b.c.d), compatible
    // (::a.b.c.d, deprecated) and NAT64 (64:ff9b::/96) reach that IPv4.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return reach_v4(v4);
    }
    if in_v6(ip, Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96)
        || (in_v6(ip, Ipv6Addr::UNSPECIFIED, 96) && u128::from(ip) > 1)
    {
        let [.., a, b, c, d] = ip.octets();
        return reach_v4(Ipv4Addr::new(a, b, c, d));
    }
    if METADATA_V6.contains(&ip) || ip.is_unspecified() || ip.is_multicast() {
        return Reach::Forbidden;
    }
    let forbidden: [(Ipv6Addr, u32); 4] = [
        (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10), // link-local
        (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10), // site-local (deprecated)
        (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
        (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64),  // discard-only
    ];
    if forbidden.iter().any(|&(net, p)| in_v6(ip, net, p)) {
        return Reach::Forbidden;
    }
    if ip.is_loopback() || in_v6(ip, Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7) {
        return Reach::Private;
    }
    // 2002::/16 (6to4) carries an IPv4 address too.
    if in_v6(ip, Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16) {
        let [_, _, a, b, c, d, ..] = ip.octets();
        return reach_v4(Ipv4Addr::new(a, b, c, d));
    }
    Reach::Public
}

/// How `ip` may be used.
pub fn reach(ip: IpAddr) -> Reach {
    match ip {
        IpAddr::V4(v4) => reach_v4(v4),
        IpAddr::V6(v6) => reach_v6(v6),
    }
}

/// Whether a delivery may go to `ip`.
pub fn allowed(ip: IpAddr, allow_private: bool) -> bool {
    match reach(ip) {
        Reach::Public => true,
        Reach::Private => allow_private,
        Reach::Forbidden => false,
    }
}

/// Why a host cannot take deliveries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the host {0} does not resolve")]
    Unresolved(String),
    #[error("the host {host} resolves to {ip}, which is not a public address")]
    NotPublic { host: String, ip: IpAddr },
}

/// How long a lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// The addresses `host:port` resolves to, if every one of them may take
/// deliveries: one refused address refuses the host (a name resolving to
/// a public and a private address would let the connection pick either).
pub async fn resolve(
    host: &str,
    port: u16,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, Refused> {
    // An IP literal (IPv6 without its brackets) needs no lookup.
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match literal.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => {
            match tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((host, port))).await
            {
                Ok(Ok(found)) => found.collect(),
                _ => Vec::new(),
            }
        }
    };
    if addrs.is_empty() {
        return Err(Refused::Unresolved(host.to_owned()));
    }
    if let Some(bad) = addrs.iter().find(|a| !allowed(a.ip(), allow_private)) {
        return Err(Refused::NotPublic {
            host: host.to_owned(),
            ip: bad.ip(),
        });
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(raw: &str) -> Reach {
        reach(raw.parse().unwrap())
    }

    #[test]
    fn public_addresses_are_public() {
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
        ] {
            assert_eq!(of(ip), Reach::Public, "{ip}");
        }
    }

    #[test]
    fn loopback_and_private_networks_are_private() {
        for ip in [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.254",
            "192.168.1.1",
            "100.64.0.1",
            "::1",
            "fd12:3456::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert_eq!(of(ip), Reach::Private, "{ip}");
        }
        assert_eq!(of("172.32.0.1"), Reach::Public);
        assert_eq!(of("100.128.0.1"), Reach::Public);
    }

    #[test]
    fn link_local_metadata_multicast_and_reserved_are_forbidden() {
        for ip in [
            "169.254.169.254",
            "169.254.0.1",
            "100.100.100.200",
            "fd00:ec2::254",
            "fe80::1",
            "febf::1",
            "0.0.0.0",
            "0.1.2.3",
            "::",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
        ] {
            assert_eq!(of(ip), Reach::Forbidden, "{ip}");
        }
    }

    #[test]
    fn private_addresses_pass_only_where_allowed_and_forbidden_ones_never() {
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let metadata: IpAddr = "169.254.169.254".parse().unwrap();
        assert!(!allowed(loopback, false));
        assert!(allowed(loopback, true));
        assert!(!allowed(metadata, true));
    }

    #[tokio::test]
    async fn hosts_are_judged_by_every_address_they_resolve_to() {
        assert_eq!(
            resolve("93.184.216.34", 443, false).await.unwrap(),
            ["93.184.216.34:443".parse().unwrap()]
        );
        assert_eq!(
            resolve("[::1]", 8080, true).await.unwrap(),
            ["[::1]:8080".parse().unwrap()]
        );
        assert!(matches!(
            resolve("localhost", 443, false).await,
            Err(Refused::NotPublic { .. })
        ));
        assert!(resolve("localhost", 443, true).await.is_ok());
        assert!(matches!(
            resolve("169.254.169.254", 80, true).await,
            Err(Refused::NotPublic { .. })
        ));
        assert!(matches!(
            resolve("no-such-host.invalid", 443, false).await,
            Err(Refused::Unresolved(_))
        ));
    }
}
