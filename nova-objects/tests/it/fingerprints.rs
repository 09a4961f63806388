//! The fingerprint table: a schema change without a version bump fails here.

use std::path::PathBuf;

const TABLE: &str = "tests/object_fingerprints.txt";

#[test]
fn object_fingerprints_match_the_checked_in_table() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(TABLE);
    let actual = nova_objects::fingerprints();
    let rendered: String = actual.iter().map(|(k, v)| format!("{k} {v}\n")).collect();
    if std::env::var_os("NOVA_RS_UPDATE_FINGERPRINTS").is_some() {
        std::fs::write(&path, &rendered).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    let mut problems = Vec::new();
    for line in expected.lines().filter(|l| !l.trim().is_empty()) {
        let (name, fp) = line.split_once(' ').unwrap_or((line, ""));
        match actual.get(name) {
            None => problems.push(format!("{name}: in the table but no longer registered")),
            Some(a) if a != fp => {
                let (old_v, _) = fp.split_once('-').unwrap_or((fp, ""));
                let (new_v, _) = a.split_once('-').unwrap_or((a, ""));
                if old_v == new_v {
                    problems.push(format!(
                        "{name}: fields changed ({fp} -> {a}) but the version is still {new_v}: \
                         bump the object's version, give new fields `#[field(since = ...)]`, \
                         handle older peers in its compat function, then update the table"
                    ));
                } else {
                    problems.push(format!("{name}: {fp} -> {a}: update the table"));
                }
            }
            Some(_) => {}
        }
    }
    for name in actual.keys() {
        if !expected.lines().any(|l| l.split(' ').next() == Some(name)) {
            problems.push(format!("{name}: new object, add it to the table"));
        }
    }
    assert!(
        problems.is_empty(),
        "object fingerprints differ from {TABLE}:\n  {}\n(after checking the above, \
         `NOVA_RS_UPDATE_FINGERPRINTS=1 cargo test -p nova-objects --test it fingerprints` \
         rewrites the table)",
        problems.join("\n  ")
    );
}
