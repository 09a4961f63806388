//! `[oslo_policy] policy_file`: an operator's overrides change who may do
//! what through the API.

use std::sync::Arc;

use super::*;
use crate::policy::{Enforcer, Policy};

#[tokio::test]
async fn a_policy_file_overrides_nova_defaults() {
    let dir = std::env::temp_dir().join(format!("nova-policy-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("policy.yaml");
    std::fs::write(
        &file,
        "# members may list services; nobody lists flavors' extra specs\n\
         \"os_compute_api:os-services:list\": \"role:member\"\n\
         \"os_compute_api:os-availability-zone:detail\": \"!\"\n",
    )
    .unwrap();
    let mut e = Enforcer::nova34();
    e.load_file(&file).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let a = app_with_policy(
        nova_service::notifications::Notifier::disabled(),
        Policy(Arc::new(e)),
    )
    .await;
    // nova's default: admins only; the file lets members.
    let r = a.get("/v2.1/os-services", &a.demo).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // nova's default lets admins; the file lets nobody.
    let r = a.get("/v2.1/os-availability-zone/detail", &a.admin).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(
        r.body["forbidden"]["message"],
        "Policy doesn't allow os_compute_api:os-availability-zone:detail to be performed."
    );
    // Rules the file leaves alone keep nova's defaults.
    let r = a.get("/v2.1/os-hypervisors", &a.demo).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = a.get("/v2.1/os-hypervisors", &a.admin).await;
    assert_eq!(r.status, StatusCode::OK);
    // A file that does not exist, or does not parse, stops start-up.
    assert!(
        Enforcer::nova34()
            .load_file(&dir.join("missing.yaml"))
            .is_err()
    );
}
