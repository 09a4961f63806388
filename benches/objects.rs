//! nova-objects: a RequestSpec (nova 34's real primitive, with its flavor,
//! image and children) decoded into the typed object and encoded again, in
//! JSON and in MessagePack; an Instance saved and loaded on SQLite; the
//! quota usage of a project of 1,000 instances, counted by the database
//! beside listing them (the way before, measured in the same run); and the
//! anchor from the same run: nova 34's `NovaObjectSerializer` + JSON on the
//! same primitive (when the oracle virtualenv is there).
//!
//! Run with: cargo bench --features db --bench objects
//! (NOVA_RS_PYTHON: the Python with nova 34; default the scripts/test virtualenv)

use std::hint::black_box;
use std::time::Instant;

use nova_objects::db::{Database, DbConfig};
use nova_objects::{
    Flavor, Instance, ListQuery, Objects, RequestSpec, SaveOptions, VersionedObject, primitive,
};
use nova_rpc::RequestContext;
use serde_json::{Value, json};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/nova-objects/tests/fixtures/RequestSpec.json"
);

/// Median microseconds per call of `f` over 7 runs of `n` calls.
fn median_us(n: usize, mut f: impl FnMut()) -> f64 {
    let mut runs: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                f();
            }
            t.elapsed().as_secs_f64() * 1e6 / n as f64
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[3]
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn anchor() -> Value {
    let python = std::env::var("NOVA_RS_PYTHON")
        .unwrap_or_else(|_| "/var/tmp/nova-rs/venv-oracles/bin/python".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/oracle/ovo_bench.py");
    match std::process::Command::new(&python)
        .args([script, FIXTURE])
        .output()
    {
        Ok(o) if o.status.success() => {
            serde_json::from_slice(&o.stdout).unwrap_or_else(|e| json!({"error": e.to_string()}))
        }
        Ok(o) => {
            json!({"error": String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("").to_owned()})
        }
        Err(e) => {
            json!({"error": format!("{python}: {e} (run scripts/test once to create the virtualenv)")})
        }
    }
}

fn main() {
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(FIXTURE).expect("fixture"))
        .expect("fixture JSON");
    let wire = serde_json::to_vec(&doc["primitive"]).expect("encode");
    let spec: RequestSpec = RequestSpec::obj_from_primitive(&doc["primitive"]).expect("decode");
    let packed = primitive::to_msgpack(&spec).expect("msgpack");

    let json_us = median_us(20_000, || {
        let s: RequestSpec = serde_json::from_slice(black_box(&wire)).expect("decode");
        black_box(serde_json::to_vec(&s).expect("encode"));
    });
    let msgpack_us = median_us(20_000, || {
        let s: RequestSpec = primitive::from_msgpack(black_box(&packed)).expect("decode");
        black_box(primitive::to_msgpack(&s).expect("encode"));
    });
    let msgpack_decode_us = median_us(20_000, || {
        let s: RequestSpec = primitive::from_msgpack(black_box(&packed)).expect("decode");
        black_box(s);
    });
    println!(
        "{}",
        json!({"impl": "nova-objects", "object": "RequestSpec", "bytes_json": wire.len(),
               "bytes_msgpack": packed.len(),
               "json_us_per_encode_decode": round(json_us),
               "msgpack_us_per_encode_decode": round(msgpack_us),
               "msgpack_us_decode_only": round(msgpack_decode_us)})
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let path = std::env::temp_dir().join(format!("nova-bench-{}.sqlite", std::process::id()));
        let db = Database::connect(&DbConfig::sqlite_file(&path))
            .await
            .expect("db");
        db.sync().await.expect("sync");
        let objects = Objects::new(db);
        let ctx = RequestContext::new().with_admin(true);
        let flavor = Flavor::new()
            .with_name(Some("m1.small".to_owned()))
            .with_flavorid("2")
            .with_vcpus(1)
            .with_memory_mb(2048)
            .with_root_gb(20)
            .with_ephemeral_gb(0)
            .with_swap(0);
        let mut inst = Instance::new()
            .with_uuid("6a1f0c3e-0000-4d2b-8c1a-0123456789ab")
            .with_project_id(Some("p".to_owned()))
            .with_user_id(Some("u".to_owned()))
            .with_display_name(Some("bench".to_owned()))
            .with_vm_state(Some("building".to_owned()))
            .with_task_state(Some("spawning".to_owned()))
            .with_flavor(flavor);
        objects.create(&ctx, &mut inst).await.expect("create");
        let n = 2_000;
        let t = Instant::now();
        for i in 0..n {
            inst.set_progress(Some(i));
            objects
                .save_with(
                    &ctx,
                    &mut inst,
                    &SaveOptions::expected_task_state([Some("spawning")]),
                )
                .await
                .expect("save");
        }
        let save_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
        let t = Instant::now();
        for _ in 0..n {
            let got: Instance = objects
                .get_by_uuid(&ctx, "6a1f0c3e-0000-4d2b-8c1a-0123456789ab")
                .await
                .expect("load");
            black_box(got);
        }
        let load_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
        println!(
            "{}",
            json!({"impl": "nova-objects", "object": "Instance", "db": "sqlite file (WAL)",
                   "us_per_save": round(save_us), "us_per_load": round(load_us)})
        );
        // Quota usage of a project holding 1,000 instances (10 users):
        // `InstanceList.get_counts` adds them up in one statement; the
        // anchor lists the project's instances and adds them up here, as
        // the API did before.
        for k in 0..1_000 {
            let mut i = Instance::new()
                .with_uuid(format!("6a1f0c3e-0001-4d2b-8c1a-{k:012}"))
                .with_project_id(Some("quota".to_owned()))
                .with_user_id(Some(format!("u{}", k % 10)))
                .with_display_name(Some(format!("vm-{k}")))
                .with_vm_state(Some("active".to_owned()))
                .with_vcpus(Some(2))
                .with_memory_mb(Some(2048))
                .with_flavor(inst.flavor().clone());
            objects.create(&ctx, &mut i).await.expect("create");
        }
        let n = 200;
        let t = Instant::now();
        for _ in 0..n {
            let c = objects
                .store()
                .instance_counts(&ctx, "quota", Some("u1"))
                .await
                .expect("counts");
            black_box(c);
        }
        let counts_us = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
        let n = 10;
        let q = ListQuery::new().filter("project_id", "quota");
        let t = Instant::now();
        for _ in 0..n {
            let all: Vec<Instance> = objects.list(&ctx, &q).await.expect("list");
            let (mut p, mut u) = ([0i64; 3], [0i64; 3]);
            for i in &all {
                let add = |c: &mut [i64; 3]| {
                    c[0] += 1;
                    c[1] += i.vcpus().unwrap_or(0);
                    c[2] += i.memory_mb().unwrap_or(0);
                };
                add(&mut p);
                if i.user_id().as_deref() == Some("u1") {
                    add(&mut u);
                }
            }
            black_box((p, u));
        }
        let listing_us = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
        println!(
            "{}",
            json!({"impl": "nova-objects", "op": "InstanceList.get_counts",
                   "instances_in_project": 1000, "db": "sqlite file (WAL)",
                   "us_per_count": round(counts_us),
                   "anchor_us_listing_the_project": round(listing_us)})
        );
        for ext in ["", "-wal", "-shm"] {
            std::fs::remove_file(format!("{}{ext}", path.display())).ok();
        }
    });
    println!("{}", json!({"anchor": anchor()}));
}
