//! Per-object bookkeeping: which fields are set, which changed, and the
//! version a decoded object was sent at.

use crate::version::ObjVersion;

/// A set of field indexes (an object has at most 128 fields).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FieldSet(u128);

impl FieldSet {
    /// No field.
    pub const EMPTY: FieldSet = FieldSet(0);

    /// Adds field `i`.
    #[inline]
    pub fn insert(&mut self, i: u32) {
        self.0 |= 1u128 << i;
    }
    /// Removes field `i`.
    #[inline]
    pub fn remove(&mut self, i: u32) {
        self.0 &= !(1u128 << i);
    }
    /// Whether field `i` is in the set.
    #[inline]
    pub fn contains(self, i: u32) -> bool {
        self.0 & (1u128 << i) != 0
    }
    /// Whether the set is empty.
    #[inline]
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// Number of fields in the set.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }
    /// Union.
    #[inline]
    pub fn union(self, other: FieldSet) -> FieldSet {
        FieldSet(self.0 | other.0)
    }
    /// Intersection.
    #[inline]
    pub fn intersection(self, other: FieldSet) -> FieldSet {
        FieldSet(self.0 & other.0)
    }
    /// Field indexes in ascending order.
    pub fn iter(self) -> impl Iterator<Item = u32> {
        let mut bits = self.0;
        std::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let i = bits.trailing_zeros();
            bits &= bits - 1;
            Some(i)
        })
    }
}

/// The hidden field `#[nova_object]` adds to every object.
///
/// Equality compares what is set and the version, not the change list
/// (two objects with the same values are equal however they were built).
#[derive(Debug, Clone, Copy, Default)]
pub struct ObjectMeta {
    pub(crate) set: FieldSet,
    pub(crate) changed: FieldSet,
    /// `Some` when decoded from a primitive of an older version.
    pub(crate) version: Option<ObjVersion>,
}

impl PartialEq for ObjectMeta {
    fn eq(&self, other: &Self) -> bool {
        self.set == other.set && self.version == other.version
    }
}

impl ObjectMeta {
    /// Field `i` was assigned: set and changed.
    #[inline]
    pub fn mark(&mut self, i: u32) {
        self.set.insert(i);
        self.changed.insert(i);
    }
    /// Field `i` was loaded (from a primitive or the database): set only.
    #[inline]
    pub fn set_loaded(&mut self, i: u32) {
        self.set.insert(i);
    }
    /// Whether field `i` is set.
    #[inline]
    pub fn is_set(&self, i: u32) -> bool {
        self.set.contains(i)
    }
    /// Forgets this object's own changes.
    #[inline]
    pub fn clear_changes(&mut self) {
        self.changed = FieldSet::EMPTY;
    }
    /// Set fields.
    pub fn set_fields(&self) -> FieldSet {
        self.set
    }
    /// Own changed fields (not counting changes inside child objects).
    pub fn changed_fields(&self) -> FieldSet {
        self.changed
    }
}
