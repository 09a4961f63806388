//! The extra-spec table nova-api validates with is nova 34's registry:
//! `scripts/extra_specs_table.py` run on the oracle virtualenv's nova
//! writes the same file as the one in the tree.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[test]
fn the_extra_spec_table_is_nova_34s_registry() {
    let python = std::env::var("NOVA_RS_PYTHON")
        .unwrap_or_else(|_| "/var/tmp/nova-rs/venv-oracles/bin/python".into());
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = std::env::temp_dir().join(format!("extra_specs-{}.json", std::process::id()));
    let status = std::process::Command::new(&python)
        .arg(root.join("scripts/extra_specs_table.py"))
        .arg(&out)
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run {python} ({e}): the oracle virtualenv with nova 34 is needed (bash scripts/test installs it)")
        });
    assert!(status.success(), "extra_specs_table.py failed");
    let fresh: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let _ = std::fs::remove_file(&out);
    let tree: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("services/api/src/extra_specs.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        fresh, tree,
        "services/api/src/extra_specs.json differs from nova's registry: regenerate it"
    );
}
