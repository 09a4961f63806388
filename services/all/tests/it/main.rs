//! functional tests
