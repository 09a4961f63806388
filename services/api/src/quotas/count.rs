//! nova's counted quotas (`nova/quota.py`, `Quotas.check_deltas`,
//! `DbQuotaDriver.limit_check_project_and_user`,
//! `compute_utils.check_num_instances_quota`): instances, cores and RAM
//! (and server groups) are counted across the project and, when the
//! check is scoped to a user, across that user in it; the project's
//! counts must fit the project's limits and the user's counts the user's
//! limits (the user's own where set, else the project's). The refusal
//! names the limits and usage of the scope that was exceeded.

use super::Limits;
use crate::ApiState;
use crate::fault::{ApiResult, Fault};
use crate::http::admin_ctx;

/// The resources counted from instances, in nova's order.
const INSTANCE_RESOURCES: [&str; 3] = ["instances", "cores", "ram"];

/// Counts of the instance resources.
pub(crate) use nova_objects::UsageCounts as Counted;

/// The count of instance resource `res` in `c`.
fn used(c: &Counted, res: &str) -> i64 {
    c.get(res).unwrap_or(0)
}

/// nova's `InstanceList.get_counts`: the project's instances, cores and
/// RAM, and `user`'s in it (deleted, soft-deleted and hidden instances do
/// not count), added up by the database.
pub(crate) async fn instances(
    st: &ApiState,
    project: &str,
    user: Option<&str>,
) -> ApiResult<(Counted, Option<Counted>)> {
    let c = st
        .objects
        .store()
        .instance_counts(&admin_ctx(), project, user)
        .await?;
    Ok((c.project, c.user))
}

/// What `check_deltas` refused: the resources over (sorted), and the
/// limits and usage of the scope exceeded (nova's `OverQuota` kwargs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Over {
    /// `overs`.
    pub overs: Vec<&'static str>,
    /// `quotas`: the exceeded scope's limits.
    pub quotas: Limits,
    /// `usages`: that scope's counts.
    pub usages: Counted,
}

/// nova's `Quotas.check_deltas` of instances, cores and RAM (`deltas` in
/// that order; `None` leaves a resource out) for `project` and, when
/// given, `user` in it.
pub(crate) async fn check_instance_deltas(
    st: &ApiState,
    project: &str,
    user: Option<&str>,
    deltas: [Option<i64>; 3],
) -> ApiResult<Result<(), Over>> {
    let limits = st.quotas.project_and_user(project, user).await?;
    deltas_within(st, project, user, limits, deltas).await
}

/// [`check_instance_deltas`] with the limits read.
async fn deltas_within(
    st: &ApiState,
    project: &str,
    user: Option<&str>,
    (project_limits, user_limits): (Limits, Option<Limits>),
    deltas: [Option<i64>; 3],
) -> ApiResult<Result<(), Over>> {
    let limit = |l: &Limits, r: &str| l.get(r).copied().unwrap_or(-1);
    // Nothing limited: nothing to count.
    if INSTANCE_RESOURCES.iter().zip(deltas).all(|(r, d)| {
        d.is_none()
            || (limit(&project_limits, r) < 0
                && user_limits.as_ref().is_none_or(|l| limit(l, r) < 0))
    }) {
        return Ok(Ok(()));
    }
    let (p, u) = instances(st, project, user).await?;
    let mut overs = Vec::new();
    let mut over_user = false;
    for (res, delta) in INSTANCE_RESOURCES.iter().zip(deltas) {
        let Some(delta) = delta else { continue };
        let pl = limit(&project_limits, res);
        if pl >= 0 && pl < used(&p, res) + delta {
            overs.push(*res);
        } else if let (Some(ul), Some(u)) = (&user_limits, &u) {
            let ul = limit(ul, res);
            if ul >= 0 && ul < used(u, res) + delta {
                overs.push(*res);
                over_user = true;
            }
        }
    }
    if overs.is_empty() {
        return Ok(Ok(()));
    }
    overs.sort_unstable();
    Ok(Err(match (over_user, user_limits, u) {
        (true, Some(quotas), Some(usages)) => Over {
            overs,
            quotas,
            usages,
        },
        _ => Over {
            overs,
            quotas: project_limits,
            usages: p,
        },
    }))
}

/// nova's `get_headroom`: what is left of each limit (an unlimited cores
/// or RAM limit follows the instances' headroom).
fn headroom(over: &Over, deltas: [i64; 3]) -> [f64; 3] {
    let q = |r: &str| over.quotas.get(r).copied().unwrap_or(-1);
    let mut h = INSTANCE_RESOURCES.map(|r| (q(r) - used(&over.usages, r)) as f64);
    for (i, res) in INSTANCE_RESOURCES.iter().enumerate().skip(1) {
        if q(res) == -1 {
            h[i] = if deltas[i] != 0 {
                // `deltas.get('instances', 1)`: a resize has none.
                h[0] * deltas[i] as f64
                    / if deltas[0] == 0 {
                        1.0
                    } else {
                        deltas[0] as f64
                    }
            } else {
                h[0]
            };
        }
    }
    h
}

/// Python's `str()` of a headroom-derived number (`2` or `2.5`).
fn py_num(x: f64) -> String {
    if x.fract() == 0.0 && x.is_finite() {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// The 403 of nova's `TooManyInstances`.
fn too_many(over: &Over, head: [f64; 3], requested: [String; 3]) -> Fault {
    let idx = |r: &str| INSTANCE_RESOURCES.iter().position(|x| *x == r).unwrap_or(0);
    let q = |r: &str| over.quotas.get(r).copied().unwrap_or(-1);
    let join = |f: &dyn Fn(&str) -> String| {
        over.overs
            .iter()
            .map(|r| f(r))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let overs = over.overs.join(", ");
    let reqs = join(&|r| requested[idx(r)].clone());
    let used = join(&|r| py_num(q(r) as f64 - head[idx(r)]));
    let allowed = join(&|r| q(r).to_string());
    Fault::forbidden(format!(
        "Quota exceeded for {overs}: Requested {reqs}, but already used {used} of {allowed} {overs}"
    ))
}

/// nova's `check_num_instances_quota`: how many of `min..=max` instances
/// of a flavor (`vcpus`, `ram`) `user` may create in `project` (counted
/// per user only when the user has a limit of its own); 403 when not even
/// `min` fit.
pub(crate) async fn check_num_instances(
    st: &ApiState,
    project: &str,
    user: &str,
    (vcpus, ram): (i64, i64),
    min: i64,
    mut max: i64,
) -> ApiResult<i64> {
    // One read: the limits, and whether the user has one of its own on
    // instances, cores or RAM (nova counts per user only then).
    let levels = st.quotas.levels(project, Some(user)).await?;
    let counted = INSTANCE_RESOURCES
        .iter()
        .any(|r| levels.user_own.contains_key(*r));
    let user = counted.then_some(user);
    let limits = (levels.project, if counted { levels.user } else { None });
    loop {
        let deltas = [max, max * vcpus, max * ram];
        let Err(over) = deltas_within(st, project, user, limits.clone(), deltas.map(Some)).await?
        else {
            return Ok(max);
        };
        let head = headroom(&over, deltas);
        let mut allowed = head[0];
        if vcpus != 0 {
            allowed = allowed.min((head[1] / vcpus as f64).floor());
        }
        if ram != 0 {
            allowed = allowed.min((head[2] / ram as f64).floor());
        }
        // Within what was asked: check again for exactly that many.
        if allowed > 0.0 && (min as f64) <= allowed && allowed < max as f64 {
            max = allowed as i64;
            continue;
        }
        let instances = if min == max {
            min.to_string()
        } else {
            format!("{min}-{max}")
        };
        let requested = [instances, deltas[1].to_string(), deltas[2].to_string()];
        return Err(too_many(&over, head, requested));
    }
}

/// nova's `_check_quota_for_upsize`: the growth in cores and RAM of a
/// resize of `user`'s instance within the project's and the user's
/// limits.
pub(crate) async fn check_upsize(
    st: &ApiState,
    project: &str,
    user: &str,
    (dcores, dram): (i64, i64),
) -> ApiResult<()> {
    let deltas = [0, dcores.max(0), dram.max(0)];
    if deltas[1] == 0 && deltas[2] == 0 {
        return Ok(());
    }
    let checked = [None, Some(deltas[1]), Some(deltas[2])];
    let Err(over) = check_instance_deltas(st, project, Some(user), checked).await? else {
        return Ok(());
    };
    let head = headroom(&over, deltas);
    let requested = deltas.map(|d| d.to_string());
    Err(too_many(&over, head, requested))
}
