//! `CrossCellWeigher`: during a cross-cell move, the source cell first.

crate::weighers::host_weigher!(
    /// Nova's `CrossCellWeigher`: 1 in the requested destination's cell,
    /// -1 elsewhere, when a cross-cell move is allowed; else 0.
    CrossCellWeigher, "CrossCellWeigher", cross_cell_move_weight_multiplier, minval = None,
    constant = |c| !c.request.requested_destination.as_ref().is_some_and(|d| d.allow_cross_cell_move && d.cell_uuid.is_some()),
    |h, c| match &c.request.requested_destination {
        Some(d) if d.allow_cross_cell_move => match &d.cell_uuid {
            Some(cell) if *cell == h.cell_uuid => 1.0,
            Some(_) => -1.0,
            None => 0.0,
        },
        _ => 0.0,
    }
);
