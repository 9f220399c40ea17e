//! The short address prefix shown next to a message: enough to tell two people apart in a
//! room, never enough to find them (the original service leaked full addresses).

use std::net::IpAddr;

/// The first two IPv4 octets (`"192.168"`) or the first two IPv6 groups (`"2001:db8"`).
/// An IPv4-mapped IPv6 address (`::ffff:192.168.1.2`, what a dual-stack socket reports for an
/// IPv4 peer) counts as IPv4. Never the full address.
pub fn ip_prefix(address: IpAddr) -> String {
    let v4 = match address {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
    };
    match (v4, address) {
        (Some(v4), _) => {
            let [a, b, _, _] = v4.octets();
            format!("{a}.{b}")
        }
        (None, IpAddr::V6(v6)) => {
            let [a, b, ..] = v6.segments();
            format!("{a:x}:{b:x}")
        }
        // Unreachable: a V4 address always has `Some(v4)`; written out to avoid a panic path.
        (None, IpAddr::V4(v4)) => v4.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(text: &str) -> String {
        ip_prefix(text.parse().expect("test address"))
    }

    #[test]
    fn ipv4_keeps_two_octets() {
        assert_eq!(prefix("192.168.1.20"), "192.168");
        assert_eq!(prefix("10.0.0.1"), "10.0");
        assert_eq!(prefix("127.0.0.1"), "127.0");
    }

    #[test]
    fn ipv6_keeps_two_groups() {
        assert_eq!(prefix("2001:db8::1"), "2001:db8");
        assert_eq!(
            prefix("2001:0db8:85a3:0000:0000:8a2e:0370:7334"),
            "2001:db8"
        );
        assert_eq!(prefix("::1"), "0:0");
        assert_eq!(prefix("fe80::1234:5678"), "fe80:0");
    }

    #[test]
    fn ipv4_mapped_ipv6_is_treated_as_ipv4() {
        assert_eq!(prefix("::ffff:192.168.7.9"), "192.168");
    }

    #[test]
    fn never_the_full_address() {
        for address in ["192.168.1.20", "2001:db8::1", "::ffff:10.1.2.3", "8.8.8.8"] {
            let shown = prefix(address);
            assert!(shown.len() < address.len(), "{address} -> {shown}");
            assert_eq!(shown.matches(['.', ':']).count(), 1, "{address} -> {shown}");
        }
    }
}
