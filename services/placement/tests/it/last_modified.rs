//! `Last-Modified` from the stored times (Placement's `created_at` /
//! `updated_at`), per route, on SQLite; and a database made before the
//! times existed gets them when it migrates.

use std::time::Duration;

use chrono::{DateTime, Utc};
use nova_placement::{PlacementHandle, SqlPlacement, Stamped, Times};
use serde_json::json;

use super::api::{Client, Reply};

const A: &str = "a1a1a1a1-0000-4000-8000-000000000001";
const B: &str = "b2b2b2b2-0000-4000-8000-000000000002";
const CONSUMER: &str = "c3c3c3c3-0000-4000-8000-000000000003";
const PROJECT: &str = "d4d4d4d4-0000-4000-8000-000000000004";

fn header(r: &Reply) -> Option<DateTime<Utc>> {
    let v = r.headers.get("last-modified")?.to_str().unwrap();
    Some(DateTime::parse_from_rfc2822(v).unwrap().with_timezone(&Utc))
}

/// The stored time at the header's (whole second) resolution.
async fn stored(p: &PlacementHandle, of: Stamped<'_>) -> DateTime<Utc> {
    let rows = p.times_async(of).await.unwrap().expect("SQL keeps times");
    let t = Times::last_modified(&rows).expect("rows");
    DateTime::from_timestamp(t.timestamp(), 0).unwrap()
}

/// HTTP dates have whole seconds: let the clock move past one.
async fn next_second() {
    tokio::time::sleep(Duration::from_millis(1100)).await;
}

async fn setup() -> (PlacementHandle, Client) {
    let s = SqlPlacement::open("sqlite::memory:").await.unwrap();
    s.sync().await.unwrap();
    let p = PlacementHandle::new(s);
    (p.clone(), Client::new(p))
}

async fn create(c: &Client, uuid: &str, name: &str) {
    let r = c
        .admin(
            "POST",
            "/resource_providers",
            Some(json!({"name": name, "uuid": uuid})),
            "1.15",
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

#[tokio::test]
async fn provider_and_inventories_answer_with_their_stored_times() {
    let (p, c) = setup().await;
    create(&c, A, "cn-a").await;
    let rp = format!("/resource_providers/{A}");
    let r = c.admin("GET", &rp, None, "1.15").await;
    let created = stored(&p, Stamped::Providers(&[A])).await;
    assert_eq!(header(&r), Some(created));
    // No inventories yet: Placement sends no Last-Modified.
    let r = c
        .admin("GET", &format!("{rp}/inventories"), None, "1.15")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["cache-control"], "no-cache");
    assert_eq!(header(&r), None);

    next_second().await;
    let inv = json!({"resource_provider_generation": 0, "inventories": {"VCPU": {"total": 8}}});
    let r = c
        .admin("PUT", &format!("{rp}/inventories"), Some(inv), "1.15")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The generation bump stamped the provider: a later Last-Modified.
    let r = c.admin("GET", &rp, None, "1.15").await;
    let updated = stored(&p, Stamped::Providers(&[A])).await;
    assert!(updated > created, "{updated} > {created}");
    assert_eq!(header(&r), Some(updated));
    let inv_at = stored(
        &p,
        Stamped::Inventories {
            provider: A,
            class: None,
        },
    )
    .await;
    let r = c
        .admin("GET", &format!("{rp}/inventories"), None, "1.15")
        .await;
    assert_eq!(header(&r), Some(inv_at));
    let r = c
        .admin("GET", &format!("{rp}/inventories/VCPU"), None, "1.15")
        .await;
    assert_eq!(header(&r), Some(inv_at));

    // A later inventory update: the kept class is stamped `updated_at`,
    // the provider again.
    next_second().await;
    let inv = json!({"resource_provider_generation": 1, "inventories": {"VCPU": {"total": 16}}});
    let r = c
        .admin("PUT", &format!("{rp}/inventories"), Some(inv), "1.15")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c
        .admin("GET", &format!("{rp}/inventories/VCPU"), None, "1.15")
        .await;
    let later = header(&r).unwrap();
    assert!(later > inv_at, "{later} > {inv_at}");
    let r = c.admin("GET", &rp, None, "1.15").await;
    assert!(header(&r).unwrap() > updated);
    // Before 1.15: neither header.
    let r = c.admin("GET", &rp, None, "1.14").await;
    assert_eq!(header(&r), None);
    assert!(!r.headers.contains_key("cache-control"));
}

#[tokio::test]
async fn a_list_answers_with_the_newest_of_its_rows() {
    let (p, c) = setup().await;
    create(&c, A, "cn-a").await;
    next_second().await;
    create(&c, B, "cn-b").await;
    let (a, b) = (
        stored(&p, Stamped::Providers(&[A])).await,
        stored(&p, Stamped::Providers(&[B])).await,
    );
    assert!(b > a);
    let r = c.admin("GET", "/resource_providers", None, "1.15").await;
    assert_eq!(r.body["resource_providers"].as_array().unwrap().len(), 2);
    assert_eq!(header(&r), Some(b));
    // Filtered to the older one: its time.
    let r = c
        .admin("GET", "/resource_providers?name=cn-a", None, "1.15")
        .await;
    assert_eq!(r.body["resource_providers"].as_array().unwrap().len(), 1);
    assert_eq!(header(&r), Some(a));

    // Traits: the standard ones carry the schema's time; a custom trait
    // created later makes the list newer, and answers its own time.
    let standard = c
        .admin("GET", "/traits/HW_CPU_X86_AVX2", None, "1.15")
        .await;
    assert_eq!(standard.status, 204);
    let standard = header(&standard).unwrap();
    assert!(standard <= a);
    next_second().await;
    let r = c.admin("PUT", "/traits/CUSTOM_GOLD", None, "1.15").await;
    assert_eq!(r.status, 201);
    let gold = stored(
        &p,
        Stamped::Names(nova_placement::Custom::Traits, &["CUSTOM_GOLD"]),
    )
    .await;
    assert!(gold > standard);
    let r = c.admin("GET", "/traits", None, "1.15").await;
    assert_eq!(header(&r), Some(gold));
    let r = c
        .admin("GET", "/traits?name=startswith:HW_", None, "1.15")
        .await;
    assert_eq!(header(&r), Some(standard));
    // PUT of an existing trait: 204 with its stored time.
    let r = c.admin("PUT", "/traits/CUSTOM_GOLD", None, "1.15").await;
    assert_eq!(r.status, 204);
    assert_eq!(header(&r), Some(gold));
}

#[tokio::test]
async fn allocations_answer_with_their_write_time() {
    let (p, c) = setup().await;
    create(&c, A, "cn-a").await;
    let inv = json!({"resource_provider_generation": 0, "inventories": {"VCPU": {"total": 8}}});
    let r = c
        .admin(
            "PUT",
            &format!("/resource_providers/{A}/inventories"),
            Some(inv),
            "1.15",
        )
        .await;
    assert_eq!(r.status, 200);
    next_second().await;
    let body = json!({
        "allocations": {A: {"resources": {"VCPU": 2}}},
        "project_id": PROJECT, "user_id": PROJECT, "consumer_generation": null,
    });
    let r = c
        .admin(
            "PUT",
            &format!("/allocations/{CONSUMER}"),
            Some(body),
            "1.28",
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let at = stored(&p, Stamped::ConsumerAllocations(CONSUMER)).await;
    let r = c
        .admin("GET", &format!("/allocations/{CONSUMER}"), None, "1.15")
        .await;
    assert_eq!(header(&r), Some(at));
    let r = c
        .admin(
            "GET",
            &format!("/resource_providers/{A}/allocations"),
            None,
            "1.15",
        )
        .await;
    assert_eq!(header(&r), Some(at));
    // The provider's own row was stamped by the allocation's generation bump.
    let r = c
        .admin("GET", &format!("/resource_providers/{A}"), None, "1.15")
        .await;
    assert_eq!(header(&r), Some(at));
    // A consumer without allocations: now.
    let before = Utc::now() - chrono::Duration::seconds(1);
    let r = c
        .admin(
            "GET",
            "/allocations/e5e5e5e5-0000-4000-8000-000000000005",
            None,
            "1.15",
        )
        .await;
    assert!(header(&r).unwrap() >= before);
}
