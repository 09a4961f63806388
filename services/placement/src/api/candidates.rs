//! `GET /allocation_candidates` (1.10): request groups from the query
//! string, the model's answer in Placement's shape for the microversion.

use std::collections::{BTreeMap, BTreeSet};

use axum::Extension;
use axum::extract::RawQuery;
use axum::http::header;
use axum::response::IntoResponse;
use nova_scheduler::placement::{
    AllocationCandidates, CandidatesRequest, GroupPolicy, Name, ProviderSummary, RequestGroup,
};

use super::providers::{check_traits, class_known};
use super::util::{self, Query};
use super::{ApiError, ApiResult, Mv, St, Who, admin_or_service, fresh};

/// The prefixes a group's parameters carry, then its suffix.
const GROUP_KEYS: [&str; 4] = ["resources", "required", "member_of", "in_tree"];

/// One group's raw values: resources, required, member_of, in_tree.
type GroupParams<'a> = (Vec<&'a str>, Vec<&'a str>, Vec<&'a str>, Vec<&'a str>);

fn split_key(k: &str, v: Mv) -> Option<(&'static str, String)> {
    for p in GROUP_KEYS {
        if let Some(s) = k.strip_prefix(p) {
            if s.is_empty() {
                return (p != "in_tree" || v.at(31)).then(|| (p, String::new()));
            }
            let ok = if v.at(33) {
                s.len() <= 64
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            } else {
                v.at(25) && s.bytes().all(|b| b.is_ascii_digit()) && !s.starts_with('0')
            };
            if ok && (p != "in_tree" || v.at(31)) {
                return Some((p, s.to_owned()));
            }
        }
    }
    None
}

pub(crate) async fn list(
    st: St,
    Extension(v): Extension<Mv>,
    Extension(who): Who,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    if !v.at(10) {
        return Err(ApiError::not_found("The resource could not be found."));
    }
    admin_or_service(&st.policy, &who, "placement:allocation_candidates:list")?;
    let q = Query::parse(raw.as_deref());
    let mut groups: BTreeMap<String, GroupParams<'_>> = BTreeMap::new();
    let unexpected = |k: &str| {
        let msg = if v.at(33) {
            format!(
                "Invalid query string parameters: '{k}' does not match any of the regexes: '^in_tree([a-zA-Z0-9_-]{{1,64}})?$', '^member_of([a-zA-Z0-9_-]{{1,64}})?$', '^required([a-zA-Z0-9_-]{{1,64}})?$', '^resources([a-zA-Z0-9_-]{{1,64}})?$'"
            )
        } else if v.at(25) {
            format!(
                "Invalid query string parameters: '{k}' does not match any of the regexes: '^member_of[1-9][0-9]*$', '^required[1-9][0-9]*$', '^resources[1-9][0-9]*$'"
            )
        } else {
            format!(
                "Invalid query string parameters: Additional properties are not allowed ('{k}' was unexpected)"
            )
        };
        ApiError::bad(msg)
    };
    for (k, val) in &q.0 {
        match k.as_str() {
            "limit" if v.at(16) => continue,
            "group_policy" if v.at(25) => continue,
            "root_required" if v.at(35) => continue,
            "same_subtree" if v.at(36) => continue,
            _ => {}
        }
        let Some((p, suffix)) = split_key(k, v) else {
            return Err(unexpected(k));
        };
        if p == "required" && suffix.is_empty() && !v.at(17) {
            return Err(unexpected(k));
        }
        if p == "member_of" && suffix.is_empty() && !v.at(21) {
            return Err(unexpected(k));
        }
        let g = groups.entry(suffix).or_default();
        match p {
            "resources" => g.0.push(val),
            "required" => g.1.push(val),
            "member_of" => g.2.push(val),
            _ => g.3.push(val),
        }
    }
    if v.at(36) && !groups.values().any(|g| !g.0.is_empty()) {
        return Err(ApiError::bad(
            "There must be at least one resources or resources[$S] parameter.",
        )
        .code("placement.query.missing_value"));
    }
    // same_subtree (1.36): real suffixes; their groups may be resourceless.
    let mut subtrees: Vec<BTreeSet<String>> = Vec::new();
    for raw in q.all("same_subtree") {
        let set: BTreeSet<String> = raw.split(',').map(|x| x.trim().to_owned()).collect();
        if set.contains("") {
            return Err(ApiError::bad(format!(
                "Empty string (unsuffixed group) can not be specified in `same_subtree` query param: {raw}"
            ))
            .code("placement.query.bad_value"));
        }
        let unknown: Vec<&str> = set
            .iter()
            .filter(|x| !groups.contains_key(*x))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            return Err(ApiError::bad(format!(
                "Real suffixes should be specified in `same_subtree`: {} not found in {}",
                unknown.join(", "),
                groups
                    .keys()
                    .filter(|k| !k.is_empty())
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .code("placement.query.bad_value"));
        }
        subtrees.push(set);
    }
    let in_subtree = |sfx: &str| subtrees.iter().any(|s| s.contains(sfx));
    if v.at(36) {
        for (sfx, g) in &groups {
            if !sfx.is_empty() && g.0.is_empty() && !in_subtree(sfx) {
                return Err(ApiError::bad(format!(
                    "Resourceless suffixed group request should be specified in `same_subtree` query param: bad group(s) - ['{sfx}']."
                ))
                .code("placement.query.bad_value"));
            }
        }
    }
    let resourceless_ok = |sfx: &str| v.at(36) && !sfx.is_empty() && in_subtree(sfx);
    for (what, idx) in [("traits", 1usize), ("member_of", 2), ("in_tree", 3)] {
        let orphans: Vec<String> = groups
            .iter()
            .filter(|(sfx, g)| g.0.is_empty() && !resourceless_ok(sfx))
            .filter(|(_, g)| match idx {
                1 => !g.1.is_empty(),
                2 => !g.2.is_empty(),
                _ => !g.3.is_empty(),
            })
            .map(|(sfx, _)| {
                let key = match idx {
                    1 => "required",
                    2 => "member_of",
                    _ => "in_tree",
                };
                format!("{key}{sfx}")
            })
            .collect();
        if !orphans.is_empty() {
            let msg = if what == "in_tree" {
                format!(
                    "All request groups must specify resources. Found the following orphaned keys: {}",
                    orphans.join(", ")
                )
            } else {
                format!(
                    "All {what} parameters must be associated with resources. Found the following orphaned {what} keys: {}",
                    orphans.join(", ")
                )
            };
            return Err(ApiError::bad(msg).code("placement.query.missing_value"));
        }
    }
    if !groups.values().any(|g| !g.0.is_empty()) {
        return Err(if v.at(36) {
            ApiError::bad("There must be at least one resources or resources[$S] parameter.")
                .code("placement.query.missing_value")
        } else if v.at(25) {
            ApiError::bad(
                "At least one request group (`resources` or `resources{$S}`) is required.",
            )
        } else {
            ApiError::bad("Invalid query string parameters: 'resources' is a required property")
        });
    }
    let mut req = CandidatesRequest::default();
    let mut numbered = 0;
    for (suffix, (res, required, member_of, in_tree)) in &groups {
        if res.len() > 1 {
            return Err(ApiError::bad(format!(
                "Invalid query string parameters: multiple 'resources{suffix}' parameters"
            ))
            .code("placement.query.duplicate_key"));
        }
        // A group without resources got here only as a resourceless
        // same_subtree group (the orphan checks above refused the rest).
        let r = res.first().copied();
        let mut g = RequestGroup {
            suffix: suffix.clone(),
            ..Default::default()
        };
        for (rc, n) in match r {
            Some(r) => util::parse_resources(r)?,
            None => Vec::new(),
        } {
            if !class_known(&st, &rc).await? {
                return Err(ApiError::bad(format!(
                    "Invalid resource class in resources parameter: No such resource class {rc}."
                )));
            }
            g.resources.insert(rc, n);
        }
        // Before 1.39 the last `required` wins.
        let required: &[&str] = if v.at(39) {
            required
        } else {
            &required[required.len().saturating_sub(1)..]
        };
        let (any_of, forbidden) = util::parse_required(required, v)?;
        let names: Vec<String> = any_of
            .iter()
            .flatten()
            .chain(forbidden.iter())
            .cloned()
            .collect();
        check_traits(&st, &names).await?;
        for set in any_of {
            if set.len() == 1 {
                g.required_traits.extend(set);
            } else {
                g.any_traits.push(set);
            }
        }
        g.forbidden_traits = forbidden;
        let (member, not_member) = util::parse_member_of(member_of, v)?;
        g.member_of = member;
        g.forbidden_aggregates = not_member;
        if let Some(t) = in_tree.last() {
            let u = util::norm_uuid(t).ok_or_else(|| {
                ApiError::bad(format!(
                    "Invalid query string parameters: Expected 'in_tree{suffix}' parameter to be a format of uuid. Got: {t}"
                ))
            })?;
            g.in_tree = Some(u);
        }
        if !suffix.is_empty() {
            numbered += 1;
        }
        req.groups.push(g);
    }
    if req.groups.is_empty() {
        return Err(ApiError::bad(
            "Invalid query string parameters: 'resources' is a required property",
        ));
    }
    let first = |k: &str| q.0.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str());
    match first("group_policy") {
        Some("isolate") => req.group_policy = GroupPolicy::Isolate,
        Some("none") => {}
        Some(other) => {
            return Err(ApiError::bad(format!(
                "Invalid query string parameters: '{other}' is not one of ['none', 'isolate']"
            )));
        }
        None if numbered > 1 => {
            return Err(ApiError::bad(
                "The \"group_policy\" parameter is required when specifying more than one \"resources{N}\" parameter.",
            ));
        }
        None => {}
    }
    if let Some(l) = first("limit") {
        let n: usize = l
            .parse()
            .ok()
            .filter(|n| *n >= 1 && !l.starts_with('0') && !l.starts_with('+'))
            .ok_or_else(|| {
                ApiError::bad(format!(
                    "Invalid query string parameters: '{l}' does not match '^[1-9]([0-9]+)?$'\n\nFailed validating 'pattern' in schema['properties']['limit']"
                ))
            })?;
        req.limit = Some(n);
    }
    if q.all("root_required").len() > 1 {
        return Err(
            ApiError::bad("Query parameter 'root_required' may be specified only once.")
                .code("placement.query.duplicate_key"),
        );
    }
    if let Some(r) = q.get("root_required") {
        // Placement's legacy parse (a flat list, `!` forbids): a trait
        // both required and forbidden is refused first.
        let items: BTreeSet<&str> = r.split(',').collect();
        let conflicts: Vec<&str> = items
            .iter()
            .filter_map(|t| t.strip_prefix('!'))
            .filter(|t| items.contains(t))
            .collect();
        if !conflicts.is_empty() {
            return Err(ApiError::bad(format!(
                "Conflicting required and forbidden traits found in root_required: {}",
                conflicts.join(", ")
            ))
            .code("placement.query.bad_value"));
        }
        let (any_of, forbidden) = util::parse_required(&[r], v)?;
        let names: Vec<String> = any_of
            .iter()
            .flatten()
            .chain(forbidden.iter())
            .cloned()
            .collect();
        check_traits(&st, &names).await?;
        req.root_required = any_of.into_iter().flatten().collect();
        req.root_forbidden = forbidden;
    }
    req.same_subtree = subtrees;
    let cands = st.placement.allocation_candidates_async(&req).await?;
    let requested: BTreeSet<&str> = req
        .groups
        .iter()
        .flat_map(|g| g.resources.keys().map(String::as_str))
        .collect();
    let body = render(&cands, &requested, v);
    let r = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    Ok(fresh(r, v))
}

/// A JSON string onto `out`, escaped as serde_json escapes; names with
/// nothing to escape (uuids, classes, traits) are copied as they are.
fn string(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// An integer onto `out`.
fn int(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// `", "` before every item but the first.
fn sep(out: &mut Vec<u8>, k: usize) {
    if k > 0 {
        out.extend_from_slice(b", ");
    }
}

/// Each name's place in sorted order (the names are distinct).
fn ranks(names: &[Name]) -> Vec<u32> {
    let mut order: Vec<usize> = (0..names.len()).collect();
    order.sort_unstable_by(|&a, &b| names[a].cmp(&names[b]));
    let mut rank = vec![0; names.len()];
    for (r, i) in order.into_iter().enumerate() {
        rank[i] = r as u32;
    }
    rank
}

/// The answer's JSON, written into one buffer straight from the model's
/// compact tables (no `Value` tree, no map or string per candidate: a
/// thousand candidates are a few hundred KiB), in the shape of
/// microversion `v`, keys in the order serde_json's map gives (sorted).
fn render(cands: &AllocationCandidates, requested: &BTreeSet<&str>, v: Mv) -> Vec<u8> {
    let providers = cands.provider_table();
    let classes = cands.class_table();
    let groups = cands.group_table();
    let class_rank = ranks(classes);
    let group_rank = ranks(groups);
    let mut out: Vec<u8> = Vec::with_capacity(
        256 + cands.len() * (if v.at(34) { 180 } else { 130 })
            + cands.provider_summaries.len() * 300,
    );
    // Before 1.29 Placement is not nested-aware: no request that uses two
    // providers of one tree, and summaries only of the providers used.
    let old = !v.at(29);
    let root_of: BTreeMap<&str, &str> = if old {
        cands
            .provider_summaries
            .iter()
            .map(|s| (&*s.uuid, &*s.root_provider_uuid))
            .collect()
    } else {
        BTreeMap::new()
    };
    let mut kept_providers: BTreeSet<&str> = BTreeSet::new();
    // Scratch space reused by every candidate.
    let mut parts: Vec<(u32, u32, i64)> = Vec::new();
    let mut maps: Vec<(u32, u32)> = Vec::new();
    let mut roots_seen: Vec<&str> = Vec::new();
    let by_provider = |a: u32, b: u32| {
        if a == b {
            std::cmp::Ordering::Equal
        } else {
            providers[a as usize].cmp(&providers[b as usize])
        }
    };
    out.extend_from_slice(b"{\"allocation_requests\": [");
    let mut written = 0;
    for i in 0..cands.len() {
        // By provider then class, one amount per (provider, class).
        parts.clear();
        parts.extend_from_slice(cands.parts(i));
        parts.sort_unstable_by(|a, b| {
            by_provider(a.0, b.0).then(class_rank[a.1 as usize].cmp(&class_rank[b.1 as usize]))
        });
        parts.dedup_by(|next, kept| {
            let same = (next.0, next.1) == (kept.0, kept.1);
            if same {
                kept.2 += next.2;
            }
            same
        });
        if old {
            roots_seen.clear();
            let mut distinct = true;
            for (k, &(p, _, _)) in parts.iter().enumerate() {
                if k > 0 && parts[k - 1].0 == p {
                    continue;
                }
                let p = &*providers[p as usize];
                let root = root_of.get(p).copied().unwrap_or(p);
                if roots_seen.contains(&root) {
                    distinct = false;
                    break;
                }
                roots_seen.push(root);
            }
            if !distinct {
                continue;
            }
            for &(p, _, _) in &parts {
                if let Some((k, _)) = root_of.get_key_value(&*providers[p as usize]) {
                    kept_providers.insert(*k);
                }
            }
        }
        sep(&mut out, written);
        written += 1;
        out.extend_from_slice(b"{\"allocations\": ");
        out.push(if v.at(12) { b'{' } else { b'[' });
        let mut k = 0;
        while k < parts.len() {
            let p = parts[k].0;
            let end = k + parts[k..].iter().take_while(|x| x.0 == p).count();
            sep(&mut out, k);
            if v.at(12) {
                string(&mut out, &providers[p as usize]);
                out.extend_from_slice(b": {\"resources\": {");
            } else {
                out.extend_from_slice(b"{\"resource_provider\": {\"uuid\": ");
                string(&mut out, &providers[p as usize]);
                out.extend_from_slice(b"}, \"resources\": {");
            }
            for (j, &(_, rc, n)) in parts[k..end].iter().enumerate() {
                sep(&mut out, j);
                string(&mut out, &classes[rc as usize]);
                out.extend_from_slice(b": ");
                int(&mut out, n);
            }
            out.extend_from_slice(b"}}");
            k = end;
        }
        out.push(if v.at(12) { b'}' } else { b']' });
        if v.at(34) {
            // Groups by name, each with its providers in the order given.
            maps.clear();
            maps.extend_from_slice(cands.mapping_pairs(i));
            maps.sort_by_key(|&(g, _)| group_rank[g as usize]);
            out.extend_from_slice(b", \"mappings\": {");
            let mut k = 0;
            while k < maps.len() {
                let g = maps[k].0;
                let end = k + maps[k..].iter().take_while(|x| x.0 == g).count();
                sep(&mut out, k);
                string(&mut out, &groups[g as usize]);
                out.extend_from_slice(b": [");
                for j in k..end {
                    let p = maps[j].1;
                    if maps[k..j].iter().any(|x| x.1 == p) {
                        continue;
                    }
                    sep(&mut out, j - k);
                    string(&mut out, &providers[p as usize]);
                }
                out.push(b']');
                k = end;
            }
            out.push(b'}');
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"], \"provider_summaries\": {");
    let mut summaries: Vec<&ProviderSummary> = cands
        .provider_summaries
        .iter()
        .filter(|s| !old || kept_providers.contains(&*s.uuid))
        .collect();
    if !summaries.is_sorted_by(|a, b| a.uuid <= b.uuid) {
        summaries.sort_unstable_by(|a, b| a.uuid.cmp(&b.uuid));
    }
    let mut res: Vec<&(Name, i64, i64)> = Vec::new();
    let mut traits: Vec<&str> = Vec::new();
    for (k, s) in summaries.iter().enumerate() {
        sep(&mut out, k);
        string(&mut out, &s.uuid);
        out.extend_from_slice(b": {");
        if v.at(29) {
            out.extend_from_slice(b"\"parent_provider_uuid\": ");
            match &s.parent_provider_uuid {
                Some(p) => string(&mut out, p),
                None => out.extend_from_slice(b"null"),
            }
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(b"\"resources\": {");
        res.clear();
        res.extend(
            s.resources
                .iter()
                .filter(|(rc, _, _)| v.at(27) || requested.contains(&**rc)),
        );
        res.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (j, (rc, cap, used)) in res.iter().enumerate() {
            sep(&mut out, j);
            string(&mut out, rc);
            out.extend_from_slice(b": {\"capacity\": ");
            int(&mut out, *cap);
            out.extend_from_slice(b", \"used\": ");
            int(&mut out, *used);
            out.push(b'}');
        }
        out.push(b'}');
        if v.at(29) {
            out.extend_from_slice(b", \"root_provider_uuid\": ");
            string(&mut out, &s.root_provider_uuid);
        }
        if v.at(17) {
            // Standard traits first, then custom ones (Placement's id order).
            traits.clear();
            traits.extend(s.traits.iter().map(|t| &**t));
            traits.sort_unstable_by_key(|x| (x.starts_with("CUSTOM_"), *x));
            out.extend_from_slice(b", \"traits\": [");
            for (j, x) in traits.iter().enumerate() {
                sep(&mut out, j);
                string(&mut out, x);
            }
            out.push(b']');
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"}}");
    out
}
