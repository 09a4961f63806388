//! FakeDriver: the contract, injected faults, and scale.

use std::sync::Arc;
use std::time::Duration;

use nova_virt::{ComputeDriver, FakeConfig, FakeDriver, Faults, InstanceSpec, PowerState};

use crate::contract::{Profile, lifecycle};

fn spec(uuid: &str) -> InstanceSpec {
    InstanceSpec {
        uuid: uuid.into(),
        name: "vm".into(),
        flavor_name: "m1.small".into(),
        image_id: "img-1".into(),
        vcpus: 2,
        memory_mb: 2048,
        root_gb: 20,
        ..InstanceSpec::default()
    }
}

#[tokio::test]
async fn fake_driver_meets_the_contract() {
    let p = Profile {
        patience: Duration::from_secs(2),
        boot_marker: None,
        vnc_answers: false,
        password_needs_agent: false,
    };
    lifecycle(Arc::new(FakeDriver::default()), spec("vm-contract"), &p).await;
}

#[tokio::test]
async fn injected_faults_fail_what_they_name() {
    let d = FakeDriver::new(FakeConfig::default());
    d.set_faults(Faults {
        fail_spawn_on_call: Some(2),
        ..Faults::default()
    });
    d.spawn(&spec("a")).await.unwrap();
    let e = d.spawn(&spec("b")).await.unwrap_err();
    assert!(e.to_string().contains("spawn call 2"), "{e}");
    assert!(
        !d.instance_exists("b").await.unwrap(),
        "a failed spawn leaves nothing"
    );
    d.spawn(&spec("c")).await.unwrap();

    d.set_faults(Faults {
        fail_spawn_for_flavor: Some("m1.small".into()),
        ..Faults::default()
    });
    assert!(d.spawn(&spec("d")).await.is_err());
    d.set_faults(Faults {
        fail_spawn_for_image: Some("img-1".into()),
        ..Faults::default()
    });
    assert!(d.spawn(&spec("e")).await.is_err());

    d.set_faults(Faults {
        crash_mid_spawn: true,
        ..Faults::default()
    });
    assert!(d.spawn(&spec("f")).await.is_err());
    assert_eq!(
        d.get_info("f").await.unwrap().state,
        PowerState::Shutdown,
        "half-built instance left behind"
    );
    d.destroy("f").await.unwrap();

    d.set_faults(Faults::default());
    assert!(d.lose_instance("a"));
    assert!(d.get_info("a").await.unwrap_err().is_not_found());

    d.set_state_externally("c", PowerState::Crashed).unwrap();
    assert_eq!(d.get_info("c").await.unwrap().state, PowerState::Crashed);
    d.power_on("c").await.unwrap();
    let e = d.unpause("c").await.unwrap_err();
    assert!(e.to_string().contains("cannot unpause"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn slow_operations_take_their_time() {
    let d = FakeDriver::default();
    d.set_faults(Faults {
        delay: Some(Duration::from_secs(30)),
        ..Faults::default()
    });
    let t = tokio::time::Instant::now();
    d.spawn(&spec("slow")).await.unwrap();
    assert!(t.elapsed() >= Duration::from_secs(30));
}

#[tokio::test]
async fn host_resources_follow_instances() {
    let d = FakeDriver::new(FakeConfig {
        vcpus: 8,
        memory_mb: 16384,
        local_gb: 100,
        ..FakeConfig::default()
    });
    d.spawn(&spec("x")).await.unwrap();
    let r = d.host_resources().await.unwrap();
    assert_eq!((r.vcpus, r.vcpus_used), (8, 2));
    assert_eq!(r.memory_mb_used, 2048 + 512);
    assert_eq!(r.local_gb_used, 20);
    assert_eq!(r.inventories["MEMORY_MB"].reserved, 512);
    assert_eq!(r.inventories["VCPU"].allocation_ratio, 4.0);
    assert!(r.traits.contains(&"COMPUTE_IMAGE_TYPE_QCOW2".to_owned()));
    let caps = d.capabilities();
    assert!(
        caps.supports_pause && !caps.supports_rescue,
        "no BFV rescue"
    );
    let e = d.rescue(&spec("missing"), "img").await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
}

#[tokio::test]
async fn rescue_password_crash_dump_and_failing_operations() {
    let d = FakeDriver::new(FakeConfig::default());
    d.spawn(&InstanceSpec {
        admin_password: Some("first".into()),
        ..spec("r")
    })
    .await
    .unwrap();
    assert_eq!(d.admin_password("r").as_deref(), Some("first"));
    d.set_admin_password("r", "root", "second").await.unwrap();
    assert_eq!(d.admin_password("r").as_deref(), Some("second"));
    d.rescue(&spec("r"), "rescue-img").await.unwrap();
    assert_eq!(d.rescue_image("r").as_deref(), Some("rescue-img"));
    assert!(
        d.rescue(&spec("r"), "again").await.is_err(),
        "already rescued"
    );
    d.unrescue("r").await.unwrap();
    assert_eq!(d.rescue_image("r"), None);
    assert!(d.unrescue("r").await.is_err(), "not rescued");
    d.trigger_crash_dump("r").await.unwrap();
    assert!(d.get_console_output("r").await.unwrap().contains("NMI"));
    d.power_off("r", Duration::ZERO).await.unwrap();
    let e = d.set_admin_password("r", "root", "x").await.unwrap_err();
    assert!(matches!(e, nova_virt::Error::InvalidState { .. }), "{e}");
    d.power_on("r").await.unwrap();
    d.set_faults(Faults {
        fail_operations: vec!["pause".into(), "trigger_crash_dump".into()],
        ..Faults::default()
    });
    assert!(d.pause("r").await.is_err());
    assert_eq!(d.get_info("r").await.unwrap().state, PowerState::Running);
    assert!(d.trigger_crash_dump("r").await.is_err());
    d.suspend("r").await.unwrap();
    assert_eq!(d.get_info("r").await.unwrap().state, PowerState::Suspended);
}
