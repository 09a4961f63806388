//! RPC API versions (`"X.Y"` or `"X.Y.Z"`) and oslo's compatibility rule.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// An RPC API version as oslo.messaging writes it: `"major.minor"` with an
/// optional third (revision) component.
///
/// ```
/// use nova_rpc::Version;
/// let v: Version = "4.5".parse().unwrap();
/// assert!(v.can_serve(&"4.3".parse().unwrap()));
/// assert!(!v.can_serve(&"5.0".parse().unwrap()));
/// assert_eq!(v.to_string(), "4.5");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version {
    /// Major version: a change here breaks compatibility.
    pub major: u32,
    /// Minor version: additions that older callers can ignore.
    pub minor: u32,
    /// Optional third component (compared only when minors are equal).
    pub rev: Option<u32>,
}

impl Version {
    /// The version a message without `version` is assumed to carry.
    pub const DEFAULT: Version = Version::new(1, 0);

    /// `major.minor`.
    pub const fn new(major: u32, minor: u32) -> Self {
        Version {
            major,
            minor,
            rev: None,
        }
    }

    /// oslo's `version_is_compatible(self, requested)`: true when an
    /// implementation at `self` can serve a request for `requested` — same
    /// major, requested minor not newer, and for equal minors the revision
    /// not newer.
    pub fn can_serve(&self, requested: &Version) -> bool {
        if self.major != requested.major || requested.minor > self.minor {
            return false;
        }
        if requested.minor == self.minor {
            return requested.rev.unwrap_or(0) <= self.rev.unwrap_or(0);
        }
        true
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rev {
            Some(rev) => write!(f, "{}.{}.{}", self.major, self.minor, rev),
            None => write!(f, "{}.{}", self.major, self.minor),
        }
    }
}

impl FromStr for Version {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::InvalidVersion(s.to_owned());
        let mut parts = s.split('.');
        let num = |p: Option<&str>| -> Result<u32, Error> {
            let p = p.ok_or_else(bad)?;
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            p.parse().map_err(|_| bad())
        };
        let major = num(parts.next())?;
        // oslo accepts a bare major ("2") as "2.0".
        let minor = match parts.next() {
            None => 0,
            some => num(some)?,
        };
        let rev = match parts.next() {
            None => None,
            some => Some(num(some)?),
        };
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Version { major, minor, rev })
    }
}

impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().expect("valid version")
    }

    #[test]
    fn parses_and_displays() {
        assert_eq!(v("1.3"), Version::new(1, 3));
        assert_eq!(v("2"), Version::new(2, 0));
        assert_eq!(v("6.5.1").rev, Some(1));
        assert_eq!(v("6.5.1").to_string(), "6.5.1");
        for bad in ["", "a.b", "1.", ".1", "1.2.3.4", "-1.0", "1.x", "1 .2"] {
            assert!(bad.parse::<Version>().is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn oslo_compatibility_rules() {
        assert!(v("1.3").can_serve(&v("1.0")));
        assert!(v("1.3").can_serve(&v("1.3")));
        assert!(!v("1.3").can_serve(&v("1.4")));
        assert!(!v("1.3").can_serve(&v("2.0")));
        assert!(!v("2.0").can_serve(&v("1.0")));
        assert!(v("1.3.2").can_serve(&v("1.3.1")));
        assert!(!v("1.3.1").can_serve(&v("1.3.2")));
        assert!(v("1.4").can_serve(&v("1.3.9")));
    }
}
