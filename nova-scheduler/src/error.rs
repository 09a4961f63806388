//! The crate's error type.

/// Scheduling errors.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Nova's `NoValidHost`: fewer hosts than instances passed.
    #[error("No valid host was found. {reason}{}", filter_note(filter, *placed, *requested))]
    NoValidHost {
        /// Nova's reason text.
        reason: String,
        /// The filter that left no host in the last round, if one did.
        filter: Option<String>,
        /// Instances that found a host before the failure.
        placed: usize,
        /// Instances requested.
        requested: usize,
    },
    /// Placement proposed root providers this scheduler has no host state
    /// for (a compute that registered after the view was loaded, or one of
    /// another cell), and the caller asked to hear of them before anything
    /// was claimed: see [`crate::Scheduler::select_destinations_known`].
    #[error("Placement proposed {} provider(s) with no host state", providers.len())]
    UnknownHosts {
        /// The root provider (compute node) uuids, in Placement's order.
        providers: Vec<String>,
    },
    /// Placement could not answer ([`PlacementError::Unavailable`]): not
    /// a lack of hosts.
    ///
    /// [`PlacementError::Unavailable`]: crate::placement::PlacementError::Unavailable
    #[error("placement: {0}")]
    Placement(crate::placement::PlacementError),
    /// A bad configuration (unknown filter or weigher, bad option value).
    #[error("invalid scheduler configuration: {0}")]
    Config(String),
    /// A scenario file that does not have the expected shape.
    #[error("invalid scenario: {0}")]
    Scenario(String),
}

fn filter_note(filter: &Option<String>, placed: usize, requested: usize) -> String {
    match filter {
        Some(f) => format!(
            " ({f} left no host for instance {} of {requested})",
            placed + 1
        ),
        None => String::new(),
    }
}

impl Error {
    /// Whether this is `NoValidHost`.
    pub fn is_no_valid_host(&self) -> bool {
        matches!(self, Error::NoValidHost { .. })
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
