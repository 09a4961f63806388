//! Parity with the real nova 34 objects (tests/oracle/ovo_oracle.py, run
//! with the Python of the oracle virtualenv that scripts/test creates):
//! for a full sample of every class, nova decodes our primitive and
//! re-encodes the same one, and nova's backport to every older version
//! (with a version manifest, as the conductor does it) equals ours.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use nova_objects::{ObjVersion, registry};
use serde_json::{Value, json};

use crate::sample::sample_object;

fn python() -> String {
    let python = std::env::var("NOVA_RS_PYTHON")
        .unwrap_or_else(|_| "/var/tmp/nova-rs/venv-oracles/bin/python".into());
    let ok = Command::new(&python)
        .args(["-c", "import nova.objects"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{python} cannot import nova (34.0.0): run scripts/test (it creates the virtualenv) \
         or set NOVA_RS_PYTHON to a Python with nova installed"
    );
    python
}

/// Paths where `a` and `b` differ (at most a few), ignoring change lists.
fn diff(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    if out.len() >= 4 {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                if k == "nova_object.changes" {
                    continue;
                }
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => diff(p, q, &format!("{path}/{k}"), out),
                    (p, q) => out.push(format!(
                        "{path}/{k}: ours {} theirs {}",
                        p.map_or("absent".into(), |v| v.to_string()),
                        q.map_or("absent".into(), |v| v.to_string())
                    )),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diff(p, q, &format!("{path}[{i}]"), out);
            }
        }
        (p, q) if p != q => out.push(format!("{path}: ours {p} theirs {q}")),
        _ => {}
    }
}

#[test]
fn nova_reads_our_primitives_and_backports_them_like_we_do() {
    let reg = registry();
    let mut items = Vec::new();
    let mut ours = Vec::new();
    for seed in [1u64, 2, 3] {
        for class in reg.classes() {
            let Some(prim) = sample_object(class, seed, 3) else {
                continue;
            };
            let obj = reg.decode(prim.clone()).unwrap();
            let manifest = class.tree_versions();
            let mut targets = Vec::new();
            let mut backports = Vec::new();
            for minor in 0..=class.version.minor {
                let t = ObjVersion::new(class.version.major, minor);
                let mut m = manifest.clone();
                m.insert(class.name.to_owned(), t);
                targets.push(t.to_string());
                backports.push(obj.to_value_at(t, Some(&m)).map_err(|e| e.to_string()));
            }
            let manifest: serde_json::Map<String, Value> = manifest
                .iter()
                .map(|(k, v)| (k.clone(), json!(v.to_string())))
                .collect();
            items.push(json!({"primitive": prim, "manifest": manifest, "targets": targets}));
            ours.push((class.name, obj.to_value(), backports));
        }
    }
    if let Some(p) = std::env::var_os("NOVA_RS_DUMP_ORACLE_INPUT") {
        std::fs::write(p, Value::Array(items.clone()).to_string()).unwrap();
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/ovo_oracle.py");
    let mut child = Command::new(python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(Value::Array(items).to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "oracle failed");
    let theirs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(theirs.len(), ours.len());
    let mut problems = Vec::new();
    for ((name, reencoded, backports), t) in ours.iter().zip(&theirs) {
        if let Some(e) = t.get("error") {
            problems.push(format!("{name}: nova cannot decode our primitive: {e}"));
            continue;
        }
        let mut d = Vec::new();
        diff(reencoded, &t["reencoded"], "", &mut d);
        if !d.is_empty() {
            problems.push(format!(
                "{name}: nova re-encodes differently: {}",
                d.join("; ")
            ));
        }
        let versions = (0..backports.len()).map(|m| {
            let class = registry().get(name).unwrap();
            ObjVersion::new(class.version.major, m as u16).to_string()
        });
        for (v, b) in versions.zip(backports) {
            let tb = &t["backports"][&v];
            match (b, tb.get("error")) {
                (Ok(b), None) => {
                    let mut d = Vec::new();
                    diff(b, tb, "", &mut d);
                    if !d.is_empty() {
                        problems.push(format!("{name} backport to {v}: {}", d.join("; ")));
                    }
                }
                (Err(_), Some(_)) => {}
                // nova needs its database to backport some objects that far.
                (Ok(_), Some(e)) if e.to_string().contains("_enginefacade_context") => {}
                (Err(e), None) => {
                    problems.push(format!("{name} backport to {v}: ours failed: {e}"))
                }
                (Ok(_), Some(e)) => {
                    problems.push(format!("{name} backport to {v}: nova failed: {e}"))
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} differences:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
