//! Compute API microversions (`OpenStack-API-Version: compute X.Y` and the
//! legacy `X-OpenStack-Nova-API-Version`).

use std::fmt;

use axum::http::HeaderMap;

/// A microversion `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion(pub u16, pub u16);

/// The oldest version served.
pub const MIN: ApiVersion = ApiVersion(2, 1);
/// The newest version served.
pub const MAX: ApiVersion = ApiVersion(2, 100);

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

impl ApiVersion {
    /// True when this request is at `v` or newer.
    pub fn at_least(self, major: u16, minor: u16) -> bool {
        self >= ApiVersion(major, minor)
    }

    /// Parses `X.Y` or `latest` as nova's `APIVersionRequest` does
    /// (`^([1-9]\d*)\.([1-9]\d*|0)$`: ASCII digits, no leading zero, so
    /// `2.01` is refused); numbers too large for a version saturate (they
    /// are then unsupported, 406, as in nova).
    pub fn parse(s: &str) -> Option<ApiVersion> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("latest") {
            return Some(MAX);
        }
        let (a, b) = s.split_once('.')?;
        let number = |n: &str, zero_ok: bool| -> Option<u16> {
            if n.is_empty() || !n.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            if n.starts_with('0') && !(zero_ok && n == "0") {
                return None;
            }
            Some(n.parse::<u16>().unwrap_or(u16::MAX))
        };
        Some(ApiVersion(number(a, false)?, number(b, true)?))
    }
}

/// What a request asked for: a version, or why it cannot be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Negotiated {
    /// Serve at this version.
    Ok(ApiVersion),
    /// 400: unparsable.
    Malformed(String),
    /// 406: outside MIN..=MAX.
    Unsupported(ApiVersion),
}

/// The version of a compute request (no header: 2.1).
pub fn negotiate(headers: &HeaderMap) -> Negotiated {
    negotiate_for(
        headers,
        "compute",
        Some("x-openstack-nova-api-version"),
        MIN,
        MAX,
    )
}

/// The version `service` is asked for in `OpenStack-API-Version` (or the
/// `legacy` header), served in `min..=max`; no header: `min`.
pub fn negotiate_for(
    headers: &HeaderMap,
    service: &str,
    legacy: Option<&str>,
    min: ApiVersion,
    max: ApiVersion,
) -> Negotiated {
    let mut value: Option<String> = None;
    for v in headers.get_all("openstack-api-version") {
        // "compute 2.60" (possibly several services, comma-separated);
        // bytes that are not ASCII are kept (and refused below), not
        // dropped with the header.
        let v = String::from_utf8_lossy(v.as_bytes());
        for part in v.split(',') {
            let mut it = part.split_whitespace();
            if let (Some(svc), Some(ver)) = (it.next(), it.next())
                && svc.eq_ignore_ascii_case(service)
            {
                value = Some(ver.to_owned());
            }
        }
    }
    if value.is_none()
        && let Some(h) = legacy
    {
        value = headers
            .get(h)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    }
    let Some(v) = value else {
        return Negotiated::Ok(min);
    };
    if v.trim().eq_ignore_ascii_case("latest") {
        return Negotiated::Ok(max);
    }
    match ApiVersion::parse(&v) {
        None => Negotiated::Malformed(v),
        Some(ver) if ver < min || ver > max => Negotiated::Unsupported(ver),
        Some(ver) => Negotiated::Ok(ver),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, v.parse().expect("header value"));
        }
        m
    }

    #[test]
    fn negotiation_follows_nova() {
        assert_eq!(negotiate(&h(&[])), Negotiated::Ok(MIN));
        assert_eq!(
            negotiate(&h(&[("OpenStack-API-Version", "compute 2.61")])),
            Negotiated::Ok(ApiVersion(2, 61))
        );
        assert_eq!(
            negotiate(&h(&[("X-OpenStack-Nova-API-Version", "2.37")])),
            Negotiated::Ok(ApiVersion(2, 37))
        );
        assert_eq!(
            negotiate(&h(&[("OpenStack-API-Version", "compute latest")])),
            Negotiated::Ok(MAX)
        );
        assert_eq!(
            negotiate(&h(&[("OpenStack-API-Version", "compute 3.0")])),
            Negotiated::Unsupported(ApiVersion(3, 0))
        );
        assert!(matches!(
            negotiate(&h(&[("X-OpenStack-Nova-API-Version", "two")])),
            Negotiated::Malformed(_)
        ));
        // The new header wins over the legacy one.
        assert_eq!(
            negotiate(&h(&[
                ("OpenStack-API-Version", "compute 2.10"),
                ("X-OpenStack-Nova-API-Version", "2.5")
            ])),
            Negotiated::Ok(ApiVersion(2, 10))
        );
    }
}
