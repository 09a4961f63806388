//! Object versions: `X.Y` (a third `.Z` component, reserved by oslo for
//! stable backports, is accepted and ignored).

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// An object version `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjVersion {
    /// Incompatible changes bump this.
    pub major: u16,
    /// Compatible additions bump this.
    pub minor: u16,
}

impl ObjVersion {
    /// `major.minor`.
    pub const fn new(major: u16, minor: u16) -> Self {
        ObjVersion { major, minor }
    }

    /// Whether an object at `self` can be read by code that knows `known`
    /// (same major, minor not newer).
    pub fn readable_by(self, known: ObjVersion) -> bool {
        self.major == known.major && self.minor <= known.minor
    }
}

impl fmt::Display for ObjVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl FromStr for ObjVersion {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::InvalidVersion(s.to_owned());
        let mut it = s.split('.');
        let major = it.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
        let minor = it.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
        if let Some(z) = it.next() {
            z.parse::<u16>().map_err(|_| bad())?;
        }
        if it.next().is_some() {
            return Err(bad());
        }
        Ok(ObjVersion { major, minor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_ignores_the_backport_component() {
        assert_eq!("1.2".parse::<ObjVersion>().unwrap(), ObjVersion::new(1, 2));
        assert_eq!(
            "2.8.1".parse::<ObjVersion>().unwrap(),
            ObjVersion::new(2, 8)
        );
        for bad in ["", "1", "1.x", "1.2.3.4", "-1.0", "1.2.z"] {
            assert!(bad.parse::<ObjVersion>().is_err(), "{bad}");
        }
        assert!(ObjVersion::new(1, 1).readable_by(ObjVersion::new(1, 2)));
        assert!(!ObjVersion::new(1, 3).readable_by(ObjVersion::new(1, 2)));
        assert!(!ObjVersion::new(2, 0).readable_by(ObjVersion::new(1, 9)));
    }
}
