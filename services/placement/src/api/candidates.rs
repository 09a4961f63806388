//! `GET /allocation_candidates` (1.10): request groups from the query
//! string, the model's answer in Placement's shape for the microversion.

use std::collections::{BTreeMap, BTreeSet};

use axum::Extension;
use axum::extract::RawQuery;
use axum::http::header;
use axum::response::IntoResponse;
use nova_scheduler::placement::{
    AllocationCandidates, CandidatesRequest, GroupPolicy, ProviderSummary, RequestGroup,
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

/// A JSON string (serde_json's escaping) onto `out`.
fn string(out: &mut Vec<u8>, s: &str) {
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// The answer's JSON, written straight from the model's tables (no
/// `Value` tree: a thousand candidates are a few hundred KiB), in the
/// shape of microversion `v`, keys in the order serde_json's map gives.
fn render(cands: &AllocationCandidates, requested: &BTreeSet<&str>, v: Mv) -> Vec<u8> {
    use std::io::Write as _;
    let mut out: Vec<u8> = Vec::with_capacity(256 + cands.len() * 420);
    let root_of: BTreeMap<&str, &str> = cands
        .provider_summaries
        .iter()
        .map(|s| (&*s.uuid, &*s.root_provider_uuid))
        .collect();
    let mut kept_providers: BTreeSet<&str> = BTreeSet::new();
    out.extend_from_slice(b"{\"allocation_requests\": [");
    let mut first = true;
    for i in 0..cands.len() {
        let r = cands.request(i);
        // Before 1.29 Placement is not nested-aware: no request that uses
        // two providers of one tree.
        if !v.at(29) {
            let mut roots_seen = BTreeSet::new();
            if !r
                .allocations
                .keys()
                .all(|p| roots_seen.insert(root_of.get(&**p).copied().unwrap_or(&**p)))
            {
                continue;
            }
            for p in r.allocations.keys() {
                if let Some((k, _)) = root_of.get_key_value(&**p) {
                    kept_providers.insert(*k);
                }
            }
        }
        if !first {
            out.extend_from_slice(b", ");
        }
        first = false;
        let resources =
            |out: &mut Vec<u8>, res: &BTreeMap<nova_scheduler::placement::Name, i64>| {
                out.push(b'{');
                for (k, (rc, n)) in res.iter().enumerate() {
                    if k > 0 {
                        out.extend_from_slice(b", ");
                    }
                    string(out, rc);
                    let _ = write!(out, ": {n}");
                }
                out.push(b'}');
            };
        out.extend_from_slice(b"{\"allocations\": ");
        if v.at(12) {
            out.push(b'{');
            for (k, (rp, res)) in r.allocations.iter().enumerate() {
                if k > 0 {
                    out.extend_from_slice(b", ");
                }
                string(&mut out, rp);
                out.extend_from_slice(b": {\"resources\": ");
                resources(&mut out, res);
                out.push(b'}');
            }
            out.push(b'}');
        } else {
            out.push(b'[');
            for (k, (rp, res)) in r.allocations.iter().enumerate() {
                if k > 0 {
                    out.extend_from_slice(b", ");
                }
                out.extend_from_slice(b"{\"resource_provider\": {\"uuid\": ");
                string(&mut out, rp);
                out.extend_from_slice(b"}, \"resources\": ");
                resources(&mut out, res);
                out.push(b'}');
            }
            out.push(b']');
        }
        if v.at(34) {
            let mut maps: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for (g, p) in &r.mappings {
                let e = maps.entry(&**g).or_default();
                if !e.contains(&&**p) {
                    e.push(&**p);
                }
            }
            out.extend_from_slice(b", \"mappings\": {");
            for (k, (g, ps)) in maps.iter().enumerate() {
                if k > 0 {
                    out.extend_from_slice(b", ");
                }
                string(&mut out, g);
                out.extend_from_slice(b": [");
                for (j, p) in ps.iter().enumerate() {
                    if j > 0 {
                        out.extend_from_slice(b", ");
                    }
                    string(&mut out, p);
                }
                out.push(b']');
            }
            out.push(b'}');
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"], \"provider_summaries\": {");
    let mut summaries: Vec<&ProviderSummary> = cands
        .provider_summaries
        .iter()
        .filter(|s| v.at(29) || kept_providers.contains(&*s.uuid))
        .collect();
    summaries.sort_by(|a, b| a.uuid.cmp(&b.uuid));
    for (k, s) in summaries.iter().enumerate() {
        if k > 0 {
            out.extend_from_slice(b", ");
        }
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
        let mut res: Vec<&(nova_scheduler::placement::Name, i64, i64)> = s
            .resources
            .iter()
            .filter(|(rc, _, _)| v.at(27) || requested.contains(&**rc))
            .collect();
        res.sort_by(|a, b| a.0.cmp(&b.0));
        for (j, (rc, cap, used)) in res.iter().enumerate() {
            if j > 0 {
                out.extend_from_slice(b", ");
            }
            string(&mut out, rc);
            let _ = write!(out, ": {{\"capacity\": {cap}, \"used\": {used}}}");
        }
        out.push(b'}');
        if v.at(29) {
            out.extend_from_slice(b", \"root_provider_uuid\": ");
            string(&mut out, &s.root_provider_uuid);
        }
        if v.at(17) {
            // Standard traits first, then custom ones (Placement's id order).
            let mut t: Vec<&str> = s.traits.iter().map(|t| &**t).collect();
            t.sort_by_key(|x| (x.starts_with("CUSTOM_"), *x));
            out.extend_from_slice(b", \"traits\": [");
            for (j, x) in t.iter().enumerate() {
                if j > 0 {
                    out.extend_from_slice(b", ");
                }
                string(&mut out, x);
            }
            out.push(b']');
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"}}");
    out
}
