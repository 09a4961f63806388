//! Creating servers (nova's `API.create`): the flavor, image and key pair
//! checks, the availability zone, quotas, the four records of each
//! instance and the cast to the conductor.

use std::collections::BTreeMap;

use nova_objects::{
    Aggregate, BuildRequest, ComputeNode, Destination, Flavor, ImageMeta, Instance,
    InstanceMapping, KeyPair, ListQuery, Lookup, NetworkRequestList, RequestSpec,
};
use nova_service::states::{PowerState, TaskState, VmState};
use serde_json::{Value, json};

use crate::ApiState;
use crate::auth::Ctx;
use crate::fault::{ApiResult, Fault};
use crate::http::admin_ctx;

/// A create request, parsed and checked against its schema and policy.
#[derive(Debug, Clone, Default)]
pub(crate) struct CreateRequest {
    /// `name`.
    pub name: String,
    /// `description`.
    pub description: Option<String>,
    /// `hostname` (2.90); else derived from the name.
    pub hostname: Option<String>,
    /// The flavor id of `flavorRef`.
    pub flavor_id: String,
    /// The image id of `imageRef` (or of an image block device mapping).
    pub image_id: Option<String>,
    /// Whether block device mappings were given.
    pub has_bdms: bool,
    /// `key_name`.
    pub key_name: Option<String>,
    /// `user_data` (base 64).
    pub user_data: Option<String>,
    /// `metadata`.
    pub metadata: BTreeMap<String, String>,
    /// `min_count`.
    pub min_count: i64,
    /// `max_count`.
    pub max_count: i64,
    /// The zone of `availability_zone`.
    pub availability_zone: Option<String>,
    /// The host of `availability_zone` `az:host` (admins).
    pub force_host: Option<String>,
    /// `host` and `hypervisor_hostname` (2.74, admins): the
    /// `requested_destination` the scheduler must honour (its filters
    /// still run, unlike a forced host).
    pub requested_host: Option<String>,
    /// See `requested_host`.
    pub requested_node: Option<String>,
    /// Scheduler hints.
    pub hints: BTreeMap<String, Vec<String>>,
    /// `accessIPv4`.
    pub access_ip_v4: Option<String>,
    /// `accessIPv6`.
    pub access_ip_v6: Option<String>,
    /// `OS-DCF:diskConfig` is `AUTO`.
    pub auto_disk_config: bool,
    /// `tags` (2.52).
    pub tags: Vec<String>,
    /// `config_drive`: the instance gets a config drive.
    pub config_drive: bool,
    /// `adminPass`; else one is generated.
    pub admin_pass: Option<String>,
    /// `trusted_image_certificates` (2.63).
    pub trusted_certs: Option<Vec<String>>,
    /// `personality` (≤ 2.56): `{path, contents}` (base64), written on the
    /// config drive.
    pub personality: Vec<Value>,
    /// `networks` (`None`: absent, the one available network).
    pub requested_networks: Option<NetworkRequestList>,
    /// `security_groups`: `default` by name, others resolved to their ids
    /// (nova's `_check_requested_secgroups`); the ports made get them.
    pub security_groups: Vec<String>,
}

/// nova's `TrustedCerts` primitive of these certificate ids.
pub(crate) fn trusted_certs_object(ids: &[String]) -> nova_objects::RawObject {
    nova_objects::RawObject(json!({
        "nova_object.name": "TrustedCerts",
        "nova_object.namespace": "nova",
        "nova_object.version": "1.0",
        "nova_object.data": {"ids": ids},
    }))
}

/// What a create made.
#[derive(Debug, Clone)]
pub(crate) struct Created {
    /// The first instance's uuid.
    pub uuid: String,
    /// The reservation id of all of them.
    pub reservation_id: String,
    /// The generated admin password.
    pub admin_pass: String,
}

/// Everything a create needs, checked before anything is written.
struct Plan {
    destination: Option<Destination>,
    flavor: Flavor,
    image: Value,
    key: Option<KeyPair>,
    count: i64,
    /// The group of the `group` hint.
    group: Option<nova_objects::InstanceGroup>,
}

async fn availability_zones(st: &ApiState) -> ApiResult<Vec<String>> {
    let aggs: Vec<Aggregate> = st.objects.list(&admin_ctx(), &ListQuery::new()).await?;
    let mut zones = vec![st.cfg.default_az.clone()];
    for a in aggs {
        if let Some(z) = a
            .metadata()
            .as_ref()
            .and_then(|m| m.get("availability_zone"))
            && !zones.contains(z)
        {
            zones.push(z.clone());
        }
    }
    Ok(zones)
}

/// Whether `zone` is one a server may be asked into.
pub(crate) async fn availability_zone_exists(st: &ApiState, zone: &str) -> ApiResult<bool> {
    Ok(availability_zones(st).await?.iter().any(|x| x == zone))
}

async fn flavor(st: &ApiState, ctx: &Ctx, fid: &str) -> ApiResult<Flavor> {
    let flavor: Flavor = match st
        .objects
        .get(&admin_ctx(), Lookup::field("flavorid", fid))
        .await
    {
        Ok(f) => f,
        Err(e) if e.is_not_found() => {
            return Err(Fault::bad_request(format!(
                "Flavor {fid} could not be found."
            )));
        }
        Err(e) => return Err(e.into()),
    };
    if *flavor.disabled() {
        return Err(Fault::bad_request(format!("Flavor {fid} is disabled.")));
    }
    if !*flavor.is_public() && !ctx.is_admin() && !flavor.projects().contains(&ctx.project_id) {
        return Err(Fault::bad_request(format!(
            "Flavor {fid} could not be found."
        )));
    }
    Ok(flavor)
}

fn image(st: &ApiState, ctx: &Ctx, r: &CreateRequest, flavor: &Flavor) -> ApiResult<Value> {
    let Some(id) = &r.image_id else {
        if r.has_bdms {
            return Err(Fault::bad_request(
                "Booting from a volume needs the block storage service, which this deployment does not have.",
            ));
        }
        return Err(Fault::bad_request("Missing imageRef attribute"));
    };
    let img = st
        .images
        .get(id)
        .filter(|i| crate::image::ImageStore::visible(ctx, i))
        .ok_or_else(|| Fault::bad_request(format!("Image {id} could not be found.")))?;
    if img["status"].as_str() != Some("active") {
        return Err(Fault::bad_request(format!("Image {id} is not active.")));
    }
    let min_ram = img["min_ram"].as_i64().unwrap_or(0);
    if min_ram > *flavor.memory_mb() {
        return Err(Fault::bad_request(
            "Flavor's memory is too small for requested image.",
        ));
    }
    let min_disk = img["min_disk"].as_i64().unwrap_or(0);
    if *flavor.root_gb() > 0 && min_disk > *flavor.root_gb() {
        return Err(Fault::bad_request(
            "Flavor's disk is too small for requested image.",
        ));
    }
    Ok(img)
}

async fn key_pair(st: &ApiState, ctx: &Ctx, name: Option<&str>) -> ApiResult<Option<KeyPair>> {
    let Some(k) = name else {
        return Ok(None);
    };
    let q = ListQuery::new()
        .filter("name", k)
        .filter("user_id", ctx.user_id.as_str());
    let found: Vec<KeyPair> = st.objects.list(&admin_ctx(), &q).await?;
    found
        .into_iter()
        .next()
        .map(Some)
        .ok_or_else(|| Fault::bad_request("Invalid key_name provided."))
}

/// How many instances the quotas allow (between `min` and `max`), counted
/// from what exists (nova's DbQuotaDriver, per project and, when the user
/// has limits of their own, per user); 403 below `min`.
async fn quota_count(
    st: &ApiState,
    ctx: &Ctx,
    flavor: &Flavor,
    min: i64,
    max: i64,
) -> ApiResult<i64> {
    crate::quotas::count::check_num_instances(
        st,
        &ctx.project_id,
        &ctx.user_id,
        (*flavor.vcpus(), *flavor.memory_mb()),
        min,
        max,
    )
    .await
}

/// Nova's quota check of a `restore` (`check_num_instances_quota` for
/// one more instance of the server's flavor, for its project and user):
/// 403 when the restored server would not fit.
pub(crate) async fn check_restore_quota(st: &ApiState, inst: &Instance) -> ApiResult<()> {
    crate::quotas::count::check_num_instances(
        st,
        inst.project_id().as_deref().unwrap_or_default(),
        inst.user_id().as_deref().unwrap_or_default(),
        (inst.vcpus().unwrap_or(0), inst.memory_mb().unwrap_or(0)),
        1,
        1,
    )
    .await
    .map(|_| ())
}

async fn plan(st: &ApiState, ctx: &Ctx, r: &CreateRequest) -> ApiResult<Plan> {
    let flavor = flavor(st, ctx, &r.flavor_id).await?;
    let image = image(st, ctx, r, &flavor)?;
    let key = key_pair(st, ctx, r.key_name.as_deref()).await?;
    // No items are within any limit: the limit is read only for some.
    if !r.metadata.is_empty() {
        super::metadata::check_quota(super::metadata::items_limit(st, ctx).await?, &r.metadata)?;
    }
    if let Some(zone) = &r.availability_zone
        && !availability_zones(st).await?.iter().any(|x| x == zone)
    {
        return Err(Fault::bad_request(format!(
            "The requested availability zone is not available: {zone}"
        )));
    }
    check_requested_networks(st, ctx, r).await?;
    let count = quota_count(st, ctx, &flavor, r.min_count, r.max_count).await?;
    let destination = requested_destination(st, r).await?;
    let group = match r.hints.get("group").and_then(|g| g.first()) {
        Some(hint) => Some(crate::server_groups::for_boot(st, ctx, hint, count).await?),
        None => None,
    };
    Ok(Plan {
        destination,
        flavor,
        image,
        key,
        count,
        group,
    })
}

/// nova's `_check_requested_networks`: with a network service, its
/// `validate_networks` (nova's 400s and 409s); without one only `"none"`,
/// `"auto"` or no networks can be served.
async fn check_requested_networks(st: &ApiState, ctx: &Ctx, r: &CreateRequest) -> ApiResult<()> {
    use nova_service::neutron::{NetworkError, validate_networks};
    let requested = r.requested_networks.as_ref();
    let Some(client) = st.network() else {
        let first = requested.and_then(|l| l.objects().first()).filter(|n| {
            n.port_id().is_some() || !matches!(n.network_id().as_deref(), Some("none" | "auto"))
        });
        if let Some(n) = first {
            let what = n
                .network_id()
                .clone()
                .or(n.port_id().clone())
                .unwrap_or_default();
            return Err(Fault::bad_request(format!(
                "Network {what} could not be found: this deployment has no network service; use \"networks\": \"none\" or \"auto\"."
            )));
        }
        return Ok(());
    };
    validate_networks(
        client,
        &ctx.project_id,
        ctx.is_admin(),
        requested,
        r.max_count,
    )
    .await
    .map_err(|e| match e {
        NetworkError::BadRequest(m) => Fault::bad_request(m),
        NetworkError::Conflict(m) => Fault::conflict(m),
        NetworkError::Unavailable(m) => Fault::internal(m),
    })
}

/// Nova's `_validate_host_or_node`: the requested host (and node) must be
/// a compute node nova knows, else 400; a node alone names its host.
async fn requested_destination(st: &ApiState, r: &CreateRequest) -> ApiResult<Option<Destination>> {
    let (host, node) = (r.requested_host.as_deref(), r.requested_node.as_deref());
    if host.is_none() && node.is_none() {
        return Ok(None);
    }
    let mut q = ListQuery::new();
    if let Some(h) = host {
        q = q.filter("host", h);
    }
    if let Some(n) = node {
        q = q.filter("hypervisor_hostname", n);
    }
    let nodes: Vec<ComputeNode> = st.objects.list(&admin_ctx(), &q).await?;
    let Some(found) = nodes.first() else {
        let what = host.or(node).unwrap_or_default();
        return Err(Fault::bad_request(format!(
            "Compute host {what} could not be found."
        )));
    };
    Ok(Some(
        Destination::new()
            .with_host(found.host().clone().unwrap_or_default())
            .with_node(node.map(str::to_owned)),
    ))
}

/// A hostname from a display name (nova's `sanitize_hostname`).
fn hostname_of(name: &str) -> String {
    let mut h: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    h = h.trim_matches('-').chars().take(63).collect();
    if h.is_empty() { "server".into() } else { h }
}

/// The instance record `n` of a create, as the API first writes it.
fn new_instance(ctx: &Ctx, r: &CreateRequest, plan: &Plan, n: i64, reservation: &str) -> Instance {
    let display = if plan.count > 1 {
        format!("{}-{}", r.name, n + 1)
    } else {
        r.name.clone()
    };
    let f = &plan.flavor;
    Instance::new()
        .with_uuid(uuid::Uuid::new_v4().to_string())
        .with_display_name(Some(display.clone()))
        .with_display_description(r.description.clone())
        .with_hostname(Some(
            r.hostname.clone().unwrap_or_else(|| hostname_of(&display)),
        ))
        .with_project_id(Some(ctx.project_id.clone()))
        .with_user_id(Some(ctx.user_id.clone()))
        .with_image_ref(plan.image["id"].as_str().map(str::to_owned))
        .with_flavor(f.clone())
        .with_instance_type_id(Some(*f.id()))
        .with_vcpus(Some(*f.vcpus()))
        .with_memory_mb(Some(*f.memory_mb()))
        .with_root_gb(Some(*f.root_gb()))
        .with_ephemeral_gb(Some(*f.ephemeral_gb()))
        .with_key_name(plan.key.as_ref().map(|k| k.name().clone()))
        .with_key_data(plan.key.as_ref().and_then(|k| k.public_key().clone()))
        // As nova: the key pair itself travels with the instance (notifications show it).
        .with_keypairs(
            nova_objects::KeyPairList::new()
                .with_objects(plan.key.iter().cloned().collect::<Vec<_>>()),
        )
        .with_metadata(r.metadata.clone())
        .with_system_metadata(BTreeMap::new())
        .with_user_data(r.user_data.clone())
        .with_vm_state(Some(VmState::Building.into()))
        .with_task_state(Some(TaskState::Scheduling.into()))
        .with_power_state(Some(PowerState::NoState as i64))
        .with_availability_zone(r.availability_zone.clone())
        .with_launch_index(Some(n))
        .with_reservation_id(Some(reservation.to_owned()))
        .with_locked(false)
        .with_config_drive(Some(if r.config_drive {
            "True".into()
        } else {
            String::new()
        }))
        .with_access_ip_v4(r.access_ip_v4.clone())
        .with_access_ip_v6(r.access_ip_v6.clone())
        .with_auto_disk_config(r.auto_disk_config)
        .with_trusted_certs(r.trusted_certs.as_deref().map(trusted_certs_object))
        .with_progress(Some(0))
        .with_shutdown_terminate(false)
        .with_disable_terminate(false)
        .with_cleaned(false)
        .with_hidden(false)
}

/// nova's `make_secgroup_list`: a uuid in `uuid`, a name (`default`) in
/// `name`; `SecurityGroup.identifier` reads them back.
fn secgroup_list(groups: &[String]) -> nova_objects::SecurityGroupList {
    let list: Vec<nova_objects::SecurityGroup> = groups
        .iter()
        .map(|g| {
            if uuid::Uuid::try_parse(g).is_ok() {
                nova_objects::SecurityGroup::new().with_uuid(g.clone())
            } else {
                nova_objects::SecurityGroup::new().with_name(g.clone())
            }
        })
        .collect();
    nova_objects::SecurityGroupList::new().with_objects(list)
}

/// Creates the instances of `r` (as many as the quotas allow between
/// `min_count` and `max_count`) and asks the conductor to schedule and
/// build them.
pub(crate) async fn create(st: &ApiState, ctx: &Ctx, r: &CreateRequest) -> ApiResult<Created> {
    super::rebuild::check_personality(&r.personality)?;
    let plan = plan(st, ctx, r).await?;
    let reservation = format!("r-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let admin_pass: String = r
        .admin_pass
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..12].to_owned());
    let rctx = admin_ctx();
    let mut build_requests = Vec::new();
    let mut specs = Vec::new();
    let mut first = None;
    for n in 0..plan.count {
        let mut inst = new_instance(ctx, r, &plan, n, &reservation);
        let uuid = inst.uuid().clone();
        let tags = super::tags::tag_list(&uuid, &r.tags);
        inst.set_tags(tags.clone());
        st.objects.create(&rctx, &mut inst).await?;
        let mut spec = RequestSpec::new()
            .with_instance_uuid(uuid.clone())
            .with_project_id(Some(ctx.project_id.clone()))
            .with_user_id(Some(ctx.user_id.clone()))
            .with_flavor(plan.flavor.clone())
            .with_image(Some(ImageMeta::from_dict(&plan.image)))
            .with_num_instances(plan.count)
            .with_availability_zone(r.availability_zone.clone())
            .with_scheduler_hints(Some(r.hints.clone()))
            .with_force_hosts(r.force_host.clone().map(|h| vec![h]))
            .with_requested_destination(plan.destination.clone())
            .with_is_bfv(false)
            .with_security_groups(secgroup_list(&r.security_groups));
        if let Some(g) = &plan.group {
            // As nova stores it: the group without its members and hosts
            // (the conductor loads them when it schedules).
            let mut g = g.clone();
            g.set_members(None);
            g.set_hosts(None);
            spec.set_instance_group(Some(g));
        }
        st.objects.create(&rctx, &mut spec).await?;
        let mut br = BuildRequest::new()
            .with_instance_uuid(uuid.clone())
            .with_project_id(ctx.project_id.clone())
            .with_instance(inst.clone())
            .with_tags(tags);
        st.objects.create(&rctx, &mut br).await?;
        let mut map = InstanceMapping::new()
            .with_instance_uuid(uuid.clone())
            .with_project_id(ctx.project_id.clone())
            .with_user_id(ctx.user_id.clone())
            .with_cell_mapping(None)
            .with_queued_for_delete(false);
        st.objects.create(&rctx, &mut map).await?;
        super::actions::record(
            st,
            ctx,
            &uuid,
            nova_service::instance_actions::names::CREATE,
        )
        .await?;
        build_requests.push(br);
        specs.push(spec);
        first.get_or_insert(uuid);
    }
    if let Some(g) = plan.group {
        let uuids: Vec<String> = specs.iter().map(|s| s.instance_uuid().clone()).collect();
        crate::server_groups::add_members(st, ctx, g, &uuids).await?;
    }
    st.rpc
        .conductor
        .schedule_and_build_instances(
            &ctx.rpc(),
            &build_requests,
            &specs,
            &plan.image,
            &Some(admin_pass.clone()),
            &super::rebuild::injected_files(&r.personality),
            &r.requested_networks,
            &None,
            &None,
        )
        .await
        .map_err(Fault::internal)?;
    Ok(Created {
        uuid: first.unwrap_or_default(),
        reservation_id: reservation,
        admin_pass,
    })
}
