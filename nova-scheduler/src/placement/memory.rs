//! [`MemoryPlacement`]: the Placement model in memory, behind one lock, so
//! every write is atomic and checked against generations.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::RwLock;

use super::Placement;
use super::model::{
    AllocationCandidates, Allocations, CandidateRow, CandidatesRequest, ConsumerAllocations,
    ConsumerWrite, GroupPolicy, InventoryRecord, InventoryWrite, Name, PlacementError,
    ProviderSummary, RequestGroup, ResourceProvider, valid_resource_class,
};

type Result<T> = std::result::Result<T, PlacementError>;

/// Names → small integers, so providers hold compact ids.
#[derive(Debug, Clone, Default)]
struct Interner {
    ids: HashMap<Name, u32>,
    names: Vec<Name>,
}

impl Interner {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        let i = self.names.len() as u32;
        let name: Name = Name::from(s);
        self.names.push(name.clone());
        self.ids.insert(name, i);
        i
    }
    fn get(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }
    fn name(&self, i: u32) -> &Name {
        &self.names[i as usize]
    }
}

#[derive(Debug, Clone)]
struct Inv {
    rc: u32,
    record: InventoryRecord,
    used: i64,
}

#[derive(Debug, Clone)]
struct Provider {
    uuid: Name,
    name: String,
    generation: u64,
    parent: Option<usize>,
    root: usize,
    children: Vec<usize>,
    inventories: Vec<Inv>,
    traits: Vec<u32>,
    aggregates: Vec<u32>,
    alive: bool,
}

impl Provider {
    fn inv(&self, rc: u32) -> Option<&Inv> {
        self.inventories.iter().find(|i| i.rc == rc)
    }
    fn has_trait(&self, t: u32) -> bool {
        self.traits.binary_search(&t).is_ok()
    }
    fn in_aggregate(&self, a: u32) -> bool {
        self.aggregates.binary_search(&a).is_ok()
    }
}

#[derive(Debug, Clone)]
struct Consumer {
    project_id: String,
    user_id: String,
    generation: u64,
    consumer_type: Option<String>,
    /// (provider, class, amount)
    allocations: Vec<(usize, u32, i64)>,
}

/// A partial allocation request: (provider, class, amount) parts and
/// (group, provider) mappings.
type Combo = (Vec<(usize, u32, i64)>, Vec<(usize, usize)>);

#[derive(Debug, Clone, Default)]
struct State {
    providers: Vec<Provider>,
    by_uuid: HashMap<Name, usize>,
    by_name: HashMap<String, usize>,
    rcs: Interner,
    traits: Interner,
    aggregates: Interner,
    consumers: HashMap<String, Consumer>,
    /// Roots in creation order (candidates come out in this order).
    roots: Vec<usize>,
}

/// A group with its names resolved to ids; `None` when it cannot match
/// anything (an unknown class, trait or aggregate that is required).
#[derive(Debug)]
struct Group {
    numbered: bool,
    suffix: Name,
    resources: Vec<(u32, i64)>,
    required: Vec<u32>,
    forbidden: Vec<u32>,
    any: Vec<Vec<u32>>,
    member_of: Vec<Vec<u32>>,
    forbidden_aggs: Vec<u32>,
    in_tree: Option<usize>,
}

/// The two name sets a provider carries.
#[derive(Debug, Clone, Copy)]
enum Tags {
    Traits,
    Aggregates,
}

impl State {
    fn tags(&self, uuid: &str, which: Tags) -> Result<(u64, BTreeSet<String>)> {
        let p = &self.providers[self.idx(uuid)?];
        let (ids, names) = match which {
            Tags::Traits => (&p.traits, &self.traits),
            Tags::Aggregates => (&p.aggregates, &self.aggregates),
        };
        Ok((
            p.generation,
            ids.iter().map(|&t| names.name(t).to_string()).collect(),
        ))
    }

    fn set_tags(
        &mut self,
        uuid: &str,
        generation: u64,
        names: &BTreeSet<String>,
        which: Tags,
    ) -> Result<u64> {
        let i = self.idx(uuid)?;
        self.check_generation(i, generation)?;
        let interner = match which {
            Tags::Traits => &mut self.traits,
            Tags::Aggregates => &mut self.aggregates,
        };
        let mut ids: Vec<u32> = names.iter().map(|t| interner.intern(t)).collect();
        ids.sort_unstable();
        let p = &mut self.providers[i];
        match which {
            Tags::Traits => p.traits = ids,
            Tags::Aggregates => p.aggregates = ids,
        }
        p.generation += 1;
        Ok(p.generation)
    }

    /// See [`MemoryPlacement::write_many`]; leaves `self` half-written on
    /// a failure (the caller works on a copy).
    fn write_many(
        &mut self,
        inventories: &[InventoryWrite],
        consumers: &[ConsumerWrite],
    ) -> Result<Vec<Option<u64>>> {
        // Interim inventories: the old with the new over them.
        let mut targets = Vec::new();
        for w in inventories {
            let i = self.idx(&w.provider)?;
            self.check_generation(i, w.generation)?;
            for (rc, rec) in &w.inventories {
                if !valid_resource_class(rc) {
                    return Err(PlacementError::BadRequest(format!(
                        "invalid resource class {rc:?}"
                    )));
                }
                rec.validate()
                    .map_err(|e| PlacementError::BadRequest(format!("{rc}: {e}")))?;
            }
            targets.push(i);
            if w.inventories.is_empty() {
                continue;
            }
            for (rc, rec) in &w.inventories {
                let id = self.rcs.intern(rc);
                let p = &mut self.providers[i];
                match p.inventories.iter_mut().find(|v| v.rc == id) {
                    Some(v) => v.record = *rec,
                    None => p.inventories.push(Inv {
                        rc: id,
                        record: *rec,
                        used: 0,
                    }),
                }
            }
            self.providers[i].generation += 1;
        }
        // The consumers: generations, then release every old allocation.
        let mut touched: BTreeSet<usize> = BTreeSet::new();
        let mut prev: HashMap<(usize, u32), i64> = HashMap::new();
        let mut currents = Vec::new();
        for c in consumers {
            let cur = self.consumers.get(&c.consumer);
            let g = cur.map(|x| x.generation);
            if g != c.generation {
                return Err(PlacementError::ConcurrentUpdate(format!(
                    "consumer generation conflict - expected {:?} but got {:?}",
                    g, c.generation
                )));
            }
            let old = cur.map(|x| x.allocations.clone()).unwrap_or_default();
            if c.allocations.is_empty() {
                touched.extend(old.iter().map(|a| a.0));
            }
            currents.push((g, cur.and_then(|x| x.consumer_type.clone()), old));
        }
        for p in 0..self.providers.len() {
            for v in &self.providers[p].inventories {
                prev.insert((p, v.rc), v.used);
            }
        }
        for (_, _, old) in &currents {
            for &(p, rc, n) in old {
                if let Some(v) = self.providers[p]
                    .inventories
                    .iter_mut()
                    .find(|v| v.rc == rc)
                {
                    v.used -= n;
                }
            }
        }
        // Take the new, each within the inventory (or no worse than before).
        let mut news = Vec::new();
        for c in consumers {
            let mut new: BTreeMap<(usize, u32), i64> = BTreeMap::new();
            for (rp, res) in &c.allocations {
                let p = self.idx(rp).map_err(|_| {
                    PlacementError::BadRequest(format!(
                        "Allocation for resource provider '{rp}' that does not exist."
                    ))
                })?;
                touched.insert(p);
                for (rc, &n) in res {
                    let invalid = || {
                        PlacementError::BadRequest(format!(
                            "Unable to allocate inventory: Inventory for '{rc}' on resource provider '{rp}' invalid."
                        ))
                    };
                    let id = self.rcs.get(rc).ok_or_else(invalid)?;
                    let v = self.providers[p]
                        .inventories
                        .iter_mut()
                        .find(|v| v.rc == id)
                        .ok_or_else(invalid)?;
                    let r = v.record;
                    if n < r.min_unit || n > r.max_unit || n % r.step_size.max(1) != 0 {
                        return Err(PlacementError::BadRequest(format!(
                            "Unable to allocate inventory: Unable to create allocation for '{rc}' on resource provider '{rp}'. The requested amount would violate inventory constraints."
                        )));
                    }
                    v.used += n;
                    let before = prev.get(&(p, id)).copied().unwrap_or(0);
                    if v.used > r.capacity() && v.used > before {
                        return Err(PlacementError::CapacityExceeded(format!(
                            "Unable to allocate inventory: Unable to create allocation for '{rc}' on resource provider '{rp}'. The requested amount would exceed the capacity."
                        )));
                    }
                    *new.entry((p, id)).or_default() += n;
                }
            }
            news.push(new);
        }
        for p in touched {
            self.providers[p].generation += 1;
        }
        let mut out = Vec::new();
        for ((c, (g, ty, _)), new) in consumers.iter().zip(currents).zip(news) {
            if new.is_empty() {
                self.consumers.remove(&c.consumer);
                out.push(None);
                continue;
            }
            let generation = g.map_or(1, |g| g + 1);
            self.consumers.insert(
                c.consumer.clone(),
                Consumer {
                    project_id: c.project_id.clone(),
                    user_id: c.user_id.clone(),
                    generation,
                    consumer_type: ty,
                    allocations: new.into_iter().map(|((p, rc), n)| (p, rc, n)).collect(),
                },
            );
            out.push(Some(generation));
        }
        // The final inventories: nothing in use may lose its inventory.
        for (w, &i) in inventories.iter().zip(&targets) {
            let mut new = Vec::with_capacity(w.inventories.len());
            for v in &self.providers[i].inventories {
                let rc = self.rcs.name(v.rc);
                if v.used > 0 && !w.inventories.contains_key(&**rc) {
                    return Err(PlacementError::InventoryInUse(format!(
                        "Inventory for '{rc}' on resource provider '{}' in use.",
                        w.provider
                    )));
                }
            }
            for (rc, rec) in &w.inventories {
                let id = self.rcs.intern(rc);
                let used = self.providers[i].inv(id).map_or(0, |v| v.used);
                new.push(Inv {
                    rc: id,
                    record: *rec,
                    used,
                });
            }
            let p = &mut self.providers[i];
            p.inventories = new;
            p.generation += 1;
        }
        Ok(out)
    }

    fn idx(&self, uuid: &str) -> Result<usize> {
        self.by_uuid
            .get(uuid)
            .copied()
            .ok_or_else(|| PlacementError::NotFound(format!("resource provider {uuid}")))
    }

    fn consumer_view(&self, consumer: &str) -> Option<ConsumerAllocations> {
        let c = self.consumers.get(consumer)?;
        let mut allocations: Allocations = BTreeMap::new();
        for &(p, rc, n) in &c.allocations {
            *allocations
                .entry(self.providers[p].uuid.clone())
                .or_default()
                .entry(self.rcs.name(rc).clone())
                .or_default() += n;
        }
        Some(ConsumerAllocations {
            allocations,
            project_id: c.project_id.clone(),
            user_id: c.user_id.clone(),
            consumer_generation: Some(c.generation),
            consumer_type: c.consumer_type.clone(),
        })
    }

    fn view(&self, i: usize) -> ResourceProvider {
        let p = &self.providers[i];
        ResourceProvider {
            uuid: p.uuid.to_string(),
            name: p.name.clone(),
            generation: p.generation,
            parent_provider_uuid: p.parent.map(|x| self.providers[x].uuid.to_string()),
            root_provider_uuid: self.providers[p.root].uuid.to_string(),
        }
    }

    fn check_generation(&self, i: usize, generation: u64) -> Result<()> {
        let p = &self.providers[i];
        if p.generation != generation {
            return Err(PlacementError::ConcurrentUpdate(format!(
                "resource provider generation conflict: {} is at generation {}, the request named {generation}",
                p.uuid, p.generation
            )));
        }
        Ok(())
    }

    fn resolve(&self, g: &RequestGroup) -> Result<Option<Group>> {
        let mut resources = Vec::new();
        for (rc, &n) in &g.resources {
            if !valid_resource_class(rc) {
                return Err(PlacementError::BadRequest(format!(
                    "invalid resource class {rc:?}"
                )));
            }
            if n < 1 {
                return Err(PlacementError::BadRequest(format!(
                    "{rc}: amount must be at least 1, not {n}"
                )));
            }
            match self.rcs.get(rc) {
                Some(id) => resources.push((id, n)),
                None => return Ok(None),
            }
        }
        let mut required = Vec::new();
        for t in &g.required_traits {
            match self.traits.get(t) {
                Some(id) => required.push(id),
                None => return Ok(None),
            }
        }
        let forbidden = g
            .forbidden_traits
            .iter()
            .filter_map(|t| self.traits.get(t))
            .collect();
        let mut any = Vec::new();
        for set in &g.any_traits {
            let ids: Vec<u32> = set.iter().filter_map(|t| self.traits.get(t)).collect();
            if ids.is_empty() {
                return Ok(None);
            }
            any.push(ids);
        }
        let mut member_of = Vec::new();
        for set in &g.member_of {
            let ids: Vec<u32> = set.iter().filter_map(|a| self.aggregates.get(a)).collect();
            if ids.is_empty() {
                return Ok(None);
            }
            member_of.push(ids);
        }
        let forbidden_aggs = g
            .forbidden_aggregates
            .iter()
            .filter_map(|a| self.aggregates.get(a))
            .collect();
        let in_tree = match &g.in_tree {
            Some(u) => match self.by_uuid.get(u.as_str()) {
                Some(&i) => Some(self.providers[i].root),
                None => return Ok(None),
            },
            None => None,
        };
        Ok(Some(Group {
            numbered: !g.suffix.is_empty(),
            suffix: Name::from(g.suffix.as_str()),
            resources,
            required,
            forbidden,
            any,
            member_of,
            forbidden_aggs,
            in_tree,
        }))
    }

    /// Providers of the tree under `root`, root first.
    fn tree(&self, root: usize) -> Vec<usize> {
        let mut out = vec![root];
        let mut i = 0;
        while i < out.len() {
            out.extend(self.providers[out[i]].children.iter().copied());
            i += 1;
        }
        out
    }

    /// `member_of` and forbidden aggregates, as Placement applies them: for
    /// the unnumbered group an aggregate on the root spans the whole tree
    /// (the provider or its root is in it); a numbered group's provider
    /// must be in it itself.
    fn aggregates_ok(&self, p: &Provider, g: &Group) -> bool {
        let root = &self.providers[p.root];
        let member = |a: u32| p.in_aggregate(a) || (!g.numbered && root.in_aggregate(a));
        g.member_of.iter().all(|set| set.iter().any(|&a| member(a)))
            && !g.forbidden_aggs.iter().any(|&a| member(a))
    }

    /// Providers of `tree` that can give all of a numbered group alone.
    fn single_providers(&self, tree: &[usize], g: &Group) -> Vec<usize> {
        tree.iter()
            .copied()
            .filter(|&i| {
                let p = &self.providers[i];
                g.resources
                    .iter()
                    .all(|&(rc, n)| p.inv(rc).is_some_and(|v| v.record.admits(v.used, n)))
                    && g.required.iter().all(|&t| p.has_trait(t))
                    && g.any.iter().all(|set| set.iter().any(|&t| p.has_trait(t)))
                    && !g.forbidden.iter().any(|&t| p.has_trait(t))
                    && self.aggregates_ok(p, g)
            })
            .collect()
    }

    /// The choices for one group in one tree: each a list of (provider, class, amount).
    fn group_choices(&self, pool: &[usize], g: &Group, cap: usize) -> Vec<Vec<(usize, u32, i64)>> {
        // `in_tree`: only the providers of that tree (the anchor's, or a
        // sharing provider's own).
        let kept: Vec<usize>;
        let tree: &[usize] = match g.in_tree {
            Some(t) => {
                kept = pool
                    .iter()
                    .copied()
                    .filter(|&p| self.providers[p].root == t)
                    .collect();
                if kept.is_empty() {
                    return Vec::new();
                }
                &kept
            }
            None => pool,
        };
        if g.numbered || tree.len() == 1 {
            let ok = self.single_providers(tree, g);
            // The unnumbered group in a one-provider tree is the same check.
            return ok
                .into_iter()
                .take(cap)
                .map(|p| {
                    if g.resources.is_empty() {
                        // A resourceless group (1.36): the provider, no amount.
                        vec![(p, u32::MAX, 0)]
                    } else {
                        g.resources.iter().map(|&(rc, n)| (p, rc, n)).collect()
                    }
                })
                .collect();
        }
        // Unnumbered group in a nested tree: each class from any provider
        // of the tree that has room for it and meets the aggregate rules.
        let mut per_rc: Vec<Vec<usize>> = Vec::new();
        for &(rc, n) in &g.resources {
            let c: Vec<usize> = tree
                .iter()
                .copied()
                .filter(|&i| {
                    let p = &self.providers[i];
                    p.inv(rc).is_some_and(|v| v.record.admits(v.used, n))
                        && !g.forbidden.iter().any(|&t| p.has_trait(t))
                        && self.aggregates_ok(p, g)
                })
                .collect();
            if c.is_empty() {
                return Vec::new();
            }
            per_rc.push(c);
        }
        let mut out: Vec<Vec<(usize, u32, i64)>> = vec![Vec::new()];
        for (k, &(rc, n)) in g.resources.iter().enumerate() {
            let mut next = Vec::new();
            'outer: for partial in &out {
                for &p in &per_rc[k] {
                    let mut v = partial.clone();
                    v.push((p, rc, n));
                    next.push(v);
                    if next.len() >= cap {
                        break 'outer;
                    }
                }
            }
            out = next;
        }
        // Required traits: the providers used, or the root, must have them.
        let root = &self.providers[pool[0]];
        let has = |choice: &Vec<(usize, u32, i64)>, t: u32| {
            root.has_trait(t)
                || choice
                    .iter()
                    .any(|&(p, _, _)| self.providers[p].has_trait(t))
        };
        out.retain(|choice| {
            g.required.iter().all(|&t| has(choice, t))
                && g.any.iter().all(|set| set.iter().any(|&t| has(choice, t)))
        });
        out
    }

    /// Whether `a` is `b` or one of its ancestors.
    fn is_ancestor(&self, a: usize, b: usize) -> bool {
        let mut cur = Some(b);
        while let Some(c) = cur {
            if c == a {
                return true;
            }
            cur = self.providers[c].parent;
        }
        false
    }

    /// Whether the providers of each `same_subtree` set of groups lie
    /// under one of them.
    fn same_subtree_ok(&self, subtrees: &[Vec<usize>], mapping: &[(usize, usize)]) -> bool {
        subtrees.iter().all(|set| {
            let ps: Vec<usize> = mapping
                .iter()
                .filter(|(g, _)| set.contains(g))
                .map(|(_, p)| *p)
                .collect();
            ps.is_empty()
                || ps
                    .iter()
                    .any(|&top| ps.iter().all(|&p| self.is_ancestor(top, p)))
        })
    }

    /// Whether a provider without children can serve every group alone;
    /// `merged` is the request's amounts summed per class.
    fn flat_fits(&self, i: usize, groups: &[Group], merged: &[(u32, i64)]) -> bool {
        let p = &self.providers[i];
        for g in groups {
            if g.in_tree.is_some_and(|t| t != i)
                || !g.required.iter().all(|&t| p.has_trait(t))
                || !g.any.iter().all(|set| set.iter().any(|&t| p.has_trait(t)))
                || g.forbidden.iter().any(|&t| p.has_trait(t))
                || !self.aggregates_ok(p, g)
            {
                return false;
            }
            for &(rc, n) in &g.resources {
                if !p.inv(rc).is_some_and(|v| v.record.admits(v.used, n)) {
                    return false;
                }
            }
        }
        groups.len() == 1
            || merged.iter().all(|&(rc, n)| {
                p.inv(rc).is_some_and(|v| {
                    v.used + n <= v.record.capacity()
                        && n <= v.record.max_unit
                        && n % v.record.step_size.max(1) == 0
                })
            })
    }

    fn candidates(&self, req: &CandidatesRequest) -> Result<AllocationCandidates> {
        let mut groups = Vec::new();
        for g in &req.groups {
            match self.resolve(g)? {
                Some(g) => groups.push(g),
                None => return Ok(AllocationCandidates::default()),
            }
        }
        if groups.is_empty() {
            return Err(PlacementError::BadRequest(
                "at least one group must request resources".into(),
            ));
        }
        let root_required: Option<Vec<u32>> = req
            .root_required
            .iter()
            .map(|t| self.traits.get(t))
            .collect();
        let Some(root_required) = root_required else {
            return Ok(AllocationCandidates::default());
        };
        let root_forbidden: Vec<u32> = req
            .root_forbidden
            .iter()
            .filter_map(|t| self.traits.get(t))
            .collect();
        const PER_TREE: usize = 64;
        // same_subtree as group indices.
        let subtrees: Vec<Vec<usize>> = req
            .same_subtree
            .iter()
            .map(|set| {
                groups
                    .iter()
                    .enumerate()
                    .filter(|(_, g)| set.contains(&*g.suffix))
                    .map(|(i, _)| i)
                    .collect()
            })
            .collect();
        // What a provider without children would allocate (every group from it).
        let mut merged_ids: Vec<(u32, i64)> = Vec::new();
        for g in &groups {
            for &(rc, n) in &g.resources {
                match merged_ids.iter_mut().find(|(r, _)| *r == rc) {
                    Some((_, m)) => *m += n,
                    None => merged_ids.push((rc, n)),
                }
            }
        }
        let flat_possible = !(req.group_policy == GroupPolicy::Isolate
            && groups.iter().filter(|g| g.numbered).count() > 1);
        let limit = req.limit.unwrap_or(usize::MAX);
        let mut out = AllocationCandidates {
            groups: groups.iter().map(|g| g.suffix.clone()).collect(),
            ..AllocationCandidates::default()
        };
        // State index → table index, filled as providers and classes appear.
        let mut pslot = vec![u32::MAX; self.providers.len()];
        let mut cslot = vec![u32::MAX; self.rcs.names.len()];
        let slot = |table: &mut Vec<Name>, slots: &mut Vec<u32>, i: usize, name: &Name| -> u32 {
            if slots[i] == u32::MAX {
                slots[i] = table.len() as u32;
                table.push(name.clone());
            }
            slots[i]
        };
        // Sharing providers (MISC_SHARES_VIA_AGGREGATE) lend to the trees
        // that share an aggregate with them.
        let sharing: Vec<usize> = match self.traits.get("MISC_SHARES_VIA_AGGREGATE") {
            Some(t) => (0..self.providers.len())
                .filter(|&i| self.providers[i].alive && self.providers[i].has_trait(t))
                .collect(),
            None => Vec::new(),
        };
        let mut used: Vec<bool> = vec![false; self.providers.len()];
        let mut seen: std::collections::HashSet<Vec<(usize, u32, i64)>> =
            std::collections::HashSet::new();
        for &root in &self.roots {
            if out.rows.len() >= limit {
                break;
            }
            let r = &self.providers[root];
            if !r.alive
                || !root_required.iter().all(|&t| r.has_trait(t))
                || root_forbidden.iter().any(|&t| r.has_trait(t))
            {
                continue;
            }
            // (No allocation for the common case: no sharing, no children.)
            let (tree, lenders): (Vec<usize>, Vec<usize>) =
                if sharing.is_empty() && r.children.is_empty() {
                    (Vec::new(), Vec::new())
                } else {
                    let tree = self.tree(root);
                    let lenders = sharing
                        .iter()
                        .copied()
                        .filter(|s| !tree.contains(s))
                        .filter(|&s| {
                            let sp = &self.providers[s];
                            tree.iter().any(|&p| {
                                self.providers[p]
                                    .aggregates
                                    .iter()
                                    .any(|a| sp.in_aggregate(*a))
                            })
                        })
                        .collect();
                    (tree, lenders)
                };
            if r.children.is_empty() && lenders.is_empty() {
                // A provider without children (most computes): every group
                // from it, the amounts of all groups together within capacity.
                if flat_possible
                    && self.flat_fits(root, &groups, &merged_ids)
                    && (sharing.is_empty()
                        || seen.insert(merged_ids.iter().map(|&(rc, n)| (root, rc, n)).collect()))
                {
                    let ps = slot(&mut out.providers, &mut pslot, root, &r.uuid);
                    let start = out.parts.len() as u32;
                    for &(rc, n) in &merged_ids {
                        let cs = slot(&mut out.classes, &mut cslot, rc as usize, self.rcs.name(rc));
                        out.parts.push((ps, cs, n));
                    }
                    let mstart = out.maps.len() as u32;
                    out.maps.extend((0..groups.len() as u32).map(|g| (g, ps)));
                    out.rows.push(CandidateRow {
                        root: ps,
                        parts: (start, out.parts.len() as u32),
                        maps: (mstart, out.maps.len() as u32),
                    });
                    used[root] = true;
                }
                continue;
            }
            let mut pool = tree.clone();
            pool.extend(lenders);
            // Cartesian product of the groups' choices, capped per tree.
            let mut combos: Vec<Combo> = vec![(Vec::new(), Vec::new())];
            for (gi, g) in groups.iter().enumerate() {
                let choices = self.group_choices(&pool, g, PER_TREE);
                if choices.is_empty() {
                    combos.clear();
                    break;
                }
                let mut next = Vec::new();
                for (allocs, mapping) in &combos {
                    for c in &choices {
                        if req.group_policy == GroupPolicy::Isolate && g.numbered {
                            let used: Vec<usize> = mapping
                                .iter()
                                .filter(|(g2, _)| groups[*g2].numbered)
                                .map(|(_, p)| *p)
                                .collect();
                            if c.iter().any(|(p, _, _)| used.contains(p)) {
                                continue;
                            }
                        }
                        let mut a = allocs.clone();
                        a.extend(c.iter().copied());
                        let mut m = mapping.clone();
                        m.extend(c.iter().map(|(p, _, _)| (gi, *p)));
                        next.push((a, m));
                        if next.len() >= PER_TREE {
                            break;
                        }
                    }
                }
                combos = next;
            }
            let mut any = false;
            for (allocs, mapping) in combos {
                if !self.same_subtree_ok(&subtrees, &mapping) {
                    continue;
                }
                // Amounts of several groups on one provider must fit together.
                let mut merged: Vec<((usize, u32), i64)> = Vec::with_capacity(allocs.len());
                for (p, rc, n) in allocs {
                    if n == 0 {
                        continue; // a resourceless group's provider
                    }
                    match merged.iter_mut().find(|(k, _)| *k == (p, rc)) {
                        Some((_, m)) => *m += n,
                        None => merged.push(((p, rc), n)),
                    }
                }
                // One allocation per (provider, class): the sum is what
                // must fit, max_unit and step size included.
                let fits = merged.iter().all(|&((p, rc), n)| {
                    self.providers[p].inv(rc).is_some_and(|v| {
                        v.used + n <= v.record.capacity()
                            && n <= v.record.max_unit
                            && n % v.record.step_size.max(1) == 0
                    })
                });
                if !fits {
                    continue;
                }
                // Same allocations with other group mappings are other
                // candidates (1.34's mappings tell them apart).
                let mut key: Vec<(usize, u32, i64)> =
                    merged.iter().map(|&((p, rc), n)| (p, rc, n)).collect();
                key.sort_unstable();
                let mut m: Vec<(usize, u32, i64)> = mapping
                    .iter()
                    .map(|&(g, p)| (p, u32::MAX - 1, g as i64))
                    .collect();
                m.sort_unstable();
                m.dedup();
                key.extend(m);
                if !seen.insert(key) {
                    continue; // the same allocation from another anchor
                }
                for &((p, _), _) in &merged {
                    used[p] = true;
                }
                let root_slot = slot(&mut out.providers, &mut pslot, root, &r.uuid);
                let start = out.parts.len() as u32;
                for ((p, rc), n) in merged {
                    let ps = slot(&mut out.providers, &mut pslot, p, &self.providers[p].uuid);
                    let cs = slot(&mut out.classes, &mut cslot, rc as usize, self.rcs.name(rc));
                    out.parts.push((ps, cs, n));
                }
                let mstart = out.maps.len() as u32;
                for (gi, p) in mapping {
                    let ps = slot(&mut out.providers, &mut pslot, p, &self.providers[p].uuid);
                    let pair = (gi as u32, ps);
                    if !out.maps[mstart as usize..].contains(&pair) {
                        out.maps.push(pair);
                    }
                }
                out.rows.push(CandidateRow {
                    root: root_slot,
                    parts: (start, out.parts.len() as u32),
                    maps: (mstart, out.maps.len() as u32),
                });
                any = true;
                if out.rows.len() >= limit {
                    break;
                }
            }
            let _ = any;
        }
        if req.without_summaries {
            return Ok(out);
        }
        // Every provider of the trees the answer allocates from.
        let mut summarized: Vec<usize> = Vec::new();
        let mut roots_done: Vec<bool> = vec![false; self.providers.len()];
        for (i, &u) in used.iter().enumerate() {
            let r = self.providers[i].root;
            if u && !roots_done[r] {
                roots_done[r] = true;
                if self.providers[r].children.is_empty() {
                    summarized.push(r); // (no tree to walk: no allocation)
                } else {
                    summarized.extend(self.tree(r));
                }
            }
        }
        {
            for i in summarized {
                let p = &self.providers[i];
                out.provider_summaries.push(ProviderSummary {
                    uuid: p.uuid.clone(),
                    resources: p
                        .inventories
                        .iter()
                        .map(|v| (self.rcs.name(v.rc).clone(), v.record.capacity(), v.used))
                        .collect(),
                    traits: p
                        .traits
                        .iter()
                        .map(|&t| self.traits.name(t).clone())
                        .collect(),
                    parent_provider_uuid: p.parent.map(|x| self.providers[x].uuid.clone()),
                    root_provider_uuid: self.providers[p.root].uuid.clone(),
                });
            }
        }
        Ok(out)
    }
}

/// The Placement model in memory: every operation takes one lock, so
/// claims are atomic (two claimants racing for the last unit: one wins,
/// the other gets a conflict) and nothing is ever allocated past capacity.
#[derive(Debug, Default)]
pub struct MemoryPlacement {
    state: RwLock<State>,
}

impl MemoryPlacement {
    /// An empty Placement.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl MemoryPlacement {
    /// Several consumers' allocations and providers' inventories written
    /// as one (`POST /allocations`, the reshaper), as Placement does in
    /// one transaction: each provider in `inventories` first widened to
    /// its old inventories with the new ones over them (a generation
    /// bump), then every consumer's allocations replaced (one bump per
    /// provider they now allocate from, or, for a consumer released, it
    /// had allocations on), then the inventories set to the new ones (a
    /// bump). All or nothing: on any failure the model is as it was.
    /// Returns each consumer's new generation (`None`: released).
    pub fn write_many(
        &self,
        inventories: &[InventoryWrite],
        consumers: &[ConsumerWrite],
    ) -> Result<Vec<Option<u64>>> {
        let mut guard = self.write();
        let mut s = guard.clone();
        let out = s.write_many(inventories, consumers)?;
        *guard = s;
        Ok(out)
    }

    /// Every consumer with its allocations, by uuid.
    pub fn consumers(&self) -> Vec<(String, ConsumerAllocations)> {
        let s = self.read();
        let mut out: Vec<(String, ConsumerAllocations)> = s
            .consumers
            .keys()
            .filter_map(|c| Some((c.clone(), s.consumer_view(c)?)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Sets the type of a consumer with allocations (1.38); false when
    /// there is no such consumer.
    pub fn set_consumer_type(&self, consumer: &str, consumer_type: Option<&str>) -> bool {
        match self.write().consumers.get_mut(consumer) {
            Some(c) => {
                c.consumer_type = consumer_type.map(str::to_owned);
                true
            }
            None => false,
        }
    }

    /// Every live provider, in creation order.
    pub fn providers(&self) -> Vec<ResourceProvider> {
        let s = self.read();
        (0..s.providers.len())
            .filter(|&i| s.providers[i].alive)
            .map(|i| s.view(i))
            .collect()
    }

    /// `PUT /resource_providers/{uuid}`: renames the provider and sets its
    /// parent. Without `reparent` (microversions before 1.37) a parent
    /// may be set on a root but never changed or removed; with it, the
    /// provider (and its subtree) may move anywhere but under itself. The
    /// generation stays (as in Placement).
    pub fn update_provider(
        &self,
        uuid: &str,
        name: &str,
        parent: Option<&str>,
        reparent: bool,
    ) -> Result<ResourceProvider> {
        let mut s = self.write();
        let i = s.idx(uuid)?;
        if let Some(&other) = s.by_name.get(name)
            && other != i
        {
            return Err(PlacementError::Duplicate(format!(
                "Conflicting resource provider {name} already exists."
            )));
        }
        let new_parent = match parent {
            Some(p) => Some(s.idx(p).map_err(|_| {
                PlacementError::BadRequest(format!("parent provider UUID does not exist: {p}"))
            })?),
            None => None,
        };
        let old_parent = s.providers[i].parent;
        if new_parent != old_parent {
            if !reparent && old_parent.is_some() {
                return Err(PlacementError::BadRequest(if new_parent.is_none() {
                    "un-parenting a provider is not currently allowed".into()
                } else {
                    "re-parenting a provider is not currently allowed".into()
                }));
            }
            if let Some(np) = new_parent {
                // Not under itself.
                let mut cur = Some(np);
                while let Some(c) = cur {
                    if c == i {
                        return Err(PlacementError::BadRequest(
                            "creating loop in the provider tree is not allowed.".into(),
                        ));
                    }
                    cur = s.providers[c].parent;
                }
            }
            if let Some(op) = old_parent {
                s.providers[op].children.retain(|&c| c != i);
            } else {
                s.roots.retain(|&r| r != i);
            }
            let new_root = match new_parent {
                Some(np) => {
                    s.providers[np].children.push(i);
                    s.providers[np].root
                }
                None => {
                    s.roots.push(i);
                    i
                }
            };
            s.providers[i].parent = new_parent;
            for p in s.tree(i) {
                s.providers[p].root = new_root;
            }
        }
        let old_name = std::mem::replace(&mut s.providers[i].name, name.to_owned());
        s.by_name.remove(&old_name);
        s.by_name.insert(name.to_owned(), i);
        Ok(s.view(i))
    }
}

impl Placement for MemoryPlacement {
    fn create_provider(
        &self,
        uuid: &str,
        name: &str,
        parent: Option<&str>,
    ) -> Result<ResourceProvider> {
        let mut s = self.write();
        if s.by_uuid.contains_key(uuid) {
            return Err(PlacementError::Duplicate(format!(
                "a resource provider with uuid {uuid} already exists"
            )));
        }
        if s.by_name.contains_key(name) {
            return Err(PlacementError::Duplicate(format!(
                "a resource provider named {name:?} already exists"
            )));
        }
        let parent = match parent {
            Some(p) => Some(s.idx(p).map_err(|_| {
                PlacementError::BadRequest(format!("parent provider {p} does not exist"))
            })?),
            None => None,
        };
        let i = s.providers.len();
        let root = parent.map_or(i, |p| s.providers[p].root);
        let uuid_name: Name = Name::from(uuid);
        s.providers.push(Provider {
            uuid: uuid_name.clone(),
            name: name.to_owned(),
            generation: 0,
            parent,
            root,
            children: Vec::new(),
            inventories: Vec::new(),
            traits: Vec::new(),
            aggregates: Vec::new(),
            alive: true,
        });
        if let Some(p) = parent {
            s.providers[p].children.push(i);
        } else {
            s.roots.push(i);
        }
        s.by_uuid.insert(uuid_name, i);
        s.by_name.insert(name.to_owned(), i);
        Ok(s.view(i))
    }

    fn get_provider(&self, uuid: &str) -> Result<ResourceProvider> {
        let s = self.read();
        let i = s.idx(uuid)?;
        Ok(s.view(i))
    }

    fn delete_provider(&self, uuid: &str) -> Result<()> {
        let mut s = self.write();
        let i = s.idx(uuid)?;
        if s.providers[i]
            .children
            .iter()
            .any(|&c| s.providers[c].alive)
        {
            return Err(PlacementError::CannotDeleteParent(format!(
                "resource provider {uuid} has children"
            )));
        }
        if s.providers[i].inventories.iter().any(|v| v.used > 0) {
            return Err(PlacementError::ProviderInUse(format!(
                "resource provider {uuid} has allocations"
            )));
        }
        let name = s.providers[i].name.clone();
        s.by_uuid.remove(uuid);
        s.by_name.remove(&name);
        s.roots.retain(|&r| r != i);
        if let Some(p) = s.providers[i].parent {
            s.providers[p].children.retain(|&c| c != i);
        }
        let p = &mut s.providers[i];
        p.alive = false;
        p.inventories.clear();
        Ok(())
    }

    fn inventories(&self, uuid: &str) -> Result<(u64, BTreeMap<String, InventoryRecord>)> {
        let s = self.read();
        let p = &s.providers[s.idx(uuid)?];
        Ok((
            p.generation,
            p.inventories
                .iter()
                .map(|v| (s.rcs.name(v.rc).to_string(), v.record))
                .collect(),
        ))
    }

    fn set_inventories(
        &self,
        uuid: &str,
        generation: u64,
        inventories: &BTreeMap<String, InventoryRecord>,
    ) -> Result<u64> {
        let mut s = self.write();
        let i = s.idx(uuid)?;
        s.check_generation(i, generation)?;
        for (rc, rec) in inventories {
            if !valid_resource_class(rc) {
                return Err(PlacementError::BadRequest(format!(
                    "invalid resource class {rc:?}"
                )));
            }
            rec.validate()
                .map_err(|e| PlacementError::BadRequest(format!("{rc}: {e}")))?;
        }
        // Nothing in use may lose its inventory.
        for v in &s.providers[i].inventories {
            let rc = s.rcs.name(v.rc);
            match inventories.get(&**rc) {
                None if v.used > 0 => {
                    return Err(PlacementError::InventoryInUse(format!(
                        "inventory for {rc} on resource provider {uuid} is in use"
                    )));
                }
                // Below usage is allowed (as in Placement): nothing more fits.
                _ => {}
            }
        }
        let mut new = Vec::with_capacity(inventories.len());
        for (rc, rec) in inventories {
            let id = s.rcs.intern(rc);
            let used = s.providers[i].inv(id).map_or(0, |v| v.used);
            new.push(Inv {
                rc: id,
                record: *rec,
                used,
            });
        }
        let p = &mut s.providers[i];
        p.inventories = new;
        p.generation += 1;
        Ok(p.generation)
    }

    fn traits(&self, uuid: &str) -> Result<(u64, BTreeSet<String>)> {
        self.read().tags(uuid, Tags::Traits)
    }

    fn set_traits(&self, uuid: &str, generation: u64, traits: &BTreeSet<String>) -> Result<u64> {
        self.write()
            .set_tags(uuid, generation, traits, Tags::Traits)
    }

    fn aggregates(&self, uuid: &str) -> Result<(u64, BTreeSet<String>)> {
        self.read().tags(uuid, Tags::Aggregates)
    }

    fn set_aggregates(
        &self,
        uuid: &str,
        generation: u64,
        aggregates: &BTreeSet<String>,
    ) -> Result<u64> {
        self.write()
            .set_tags(uuid, generation, aggregates, Tags::Aggregates)
    }

    fn usages(&self, uuid: &str) -> Result<BTreeMap<String, i64>> {
        let s = self.read();
        let p = &s.providers[s.idx(uuid)?];
        Ok(p.inventories
            .iter()
            .map(|v| (s.rcs.name(v.rc).to_string(), v.used))
            .collect())
    }

    fn allocation_candidates(&self, req: &CandidatesRequest) -> Result<AllocationCandidates> {
        self.read().candidates(req)
    }

    fn allocations(&self, consumer: &str) -> Result<ConsumerAllocations> {
        Ok(self.read().consumer_view(consumer).unwrap_or_default())
    }

    /// `DELETE /allocations/{consumer}`: as in Placement, no provider
    /// generation moves (freeing never overcommits).
    fn delete_allocations(&self, consumer: &str) -> Result<()> {
        let mut s = self.write();
        let Some(c) = s.consumers.remove(consumer) else {
            return Ok(());
        };
        for (p, rc, n) in c.allocations {
            if let Some(v) = s.providers[p].inventories.iter_mut().find(|v| v.rc == rc) {
                v.used -= n;
            }
        }
        Ok(())
    }

    fn put_allocations(
        &self,
        consumer: &str,
        allocations: &Allocations,
        project_id: &str,
        user_id: &str,
        consumer_generation: Option<u64>,
    ) -> Result<Option<u64>> {
        let mut s = self.write();
        let current = s.consumers.get(consumer).map(|c| c.generation);
        if current != consumer_generation {
            return Err(PlacementError::ConcurrentUpdate(format!(
                "consumer generation conflict - expected {current:?} but got {consumer_generation:?}"
            )));
        }
        // Resolve and merge the new allocations.
        let mut new: BTreeMap<(usize, u32), i64> = BTreeMap::new();
        for (rp, res) in allocations {
            let p = s.idx(rp).map_err(|_| {
                PlacementError::BadRequest(format!("resource provider {rp} does not exist"))
            })?;
            for (rc, &n) in res {
                if n < 1 {
                    return Err(PlacementError::BadRequest(format!(
                        "{rc} on {rp}: amount must be at least 1"
                    )));
                }
                let id = s.rcs.get(rc).ok_or_else(|| {
                    PlacementError::BadRequest(format!(
                        "resource provider {rp} has no inventory of {rc}"
                    ))
                })?;
                *new.entry((p, id)).or_default() += n;
            }
        }
        let old: Vec<(usize, u32, i64)> = s
            .consumers
            .get(consumer)
            .map(|c| c.allocations.clone())
            .unwrap_or_default();
        let old_of = |p: usize, rc: u32| {
            old.iter()
                .filter(|a| a.0 == p && a.1 == rc)
                .map(|a| a.2)
                .sum::<i64>()
        };
        for (&(p, rc), &n) in &new {
            let prov = &s.providers[p];
            let Some(v) = prov.inv(rc) else {
                return Err(PlacementError::BadRequest(format!(
                    "resource provider {} has no inventory of {}",
                    prov.uuid,
                    s.rcs.name(rc)
                )));
            };
            let used_without = v.used - old_of(p, rc);
            if !v.record.admits(used_without, n) {
                return Err(PlacementError::CapacityExceeded(format!(
                    "unable to allocate {n} {} on resource provider {}: {} of {} used (min_unit {}, max_unit {}, step_size {})",
                    s.rcs.name(rc),
                    prov.uuid,
                    used_without,
                    v.record.capacity(),
                    v.record.min_unit,
                    v.record.max_unit,
                    v.record.step_size
                )));
            }
        }
        // Apply: release the old, take the new. As in Placement, the
        // providers bumped are those allocated from now (or, when the
        // consumer is released, those it had allocations on): freeing
        // alone never overcommits.
        let mut touched: BTreeSet<usize> = BTreeSet::new();
        for &(p, rc, n) in &old {
            if let Some(v) = s.providers[p].inventories.iter_mut().find(|v| v.rc == rc) {
                v.used -= n;
            }
            if new.is_empty() {
                touched.insert(p);
            }
        }
        for (&(p, rc), &n) in &new {
            if let Some(v) = s.providers[p].inventories.iter_mut().find(|v| v.rc == rc) {
                v.used += n;
            }
            touched.insert(p);
        }
        for p in touched {
            s.providers[p].generation += 1;
        }
        if new.is_empty() {
            s.consumers.remove(consumer);
            return Ok(None);
        }
        let generation = current.map_or(1, |g| g + 1);
        let consumer_type = s
            .consumers
            .get(consumer)
            .and_then(|c| c.consumer_type.clone());
        s.consumers.insert(
            consumer.to_owned(),
            Consumer {
                project_id: project_id.to_owned(),
                user_id: user_id.to_owned(),
                generation,
                consumer_type,
                allocations: new.into_iter().map(|((p, rc), n)| (p, rc, n)).collect(),
            },
        );
        Ok(Some(generation))
    }
}
