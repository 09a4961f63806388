use super::*;

fn ctx(roles: &[&str], project: &str, user: &str) -> Ctx {
    Ctx {
        user_id: user.into(),
        project_id: project.into(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        ..Ctx::default()
    }
}

#[test]
fn nova34_defaults_and_personas() {
    let e = Enforcer::nova34();
    assert!(e.rule_names().len() > 200);
    let admin = ctx(&["admin", "manager", "member", "reader"], "admin", "a");
    let member = ctx(&["member", "reader"], "p1", "u1");
    let reader = ctx(&["reader"], "p1", "u2");
    let manager = ctx(&["manager", "member", "reader"], "p1", "m");
    let service = ctx(&["service"], "service", "nova");
    let own = target("p1", "u1");
    let other = target("p2", "u9");
    // Project member rules: members of the target project, and admins.
    for (who, t, ok) in [
        (&member, &own, true),
        (&member, &other, false),
        (&reader, &own, false),
        (&admin, &other, true),
    ] {
        assert_eq!(e.allows(who, "os_compute_api:servers:create", t), ok);
    }
    // Reader rules.
    assert!(e.allows(&reader, "os_compute_api:servers:index", &own));
    assert!(!e.allows(&reader, "os_compute_api:servers:index", &other));
    // Admin-only rules.
    assert!(!e.allows(&member, "os_compute_api:os-flavor-manage:create", &own));
    assert!(e.allows(&admin, "os_compute_api:os-flavor-manage:create", &own));
    // Manager rules (nova 34: live migration by a project manager).
    assert!(e.allows(
        &manager,
        "os_compute_api:os-migrate-server:migrate_live",
        &own
    ));
    assert!(!e.allows(
        &member,
        "os_compute_api:os-migrate-server:migrate_live",
        &own
    ));
    // Service rules.
    assert!(e.allows(
        &service,
        "os_compute_api:os-server-external-events:create",
        &own
    ));
    assert!(!e.allows(
        &member,
        "os_compute_api:os-server-external-events:create",
        &own
    ));
    // Scope: a system-scoped admin token is refused by project-scoped rules.
    let system = Ctx {
        system_scope: Some("all".into()),
        project_id: String::new(),
        ..admin.clone()
    };
    assert!(!e.allows(&system, "os_compute_api:os-flavor-manage:create", &own));
    let mut lax = e.clone();
    lax.enforce_scope = false;
    assert!(lax.allows(&system, "os_compute_api:os-flavor-manage:create", &own));
    // Unregistered rules deny.
    assert!(!e.allows(&admin, "os_compute_api:no-such-rule", &own));
    let f = e
        .enforce(&member, "os_compute_api:os-flavor-manage:create", &own)
        .unwrap_err();
    assert_eq!(
        f.message,
        "Policy doesn't allow os_compute_api:os-flavor-manage:create to be performed."
    );
}

#[test]
fn overrides_from_yaml_and_json_and_old_defaults() {
    let mut e = Enforcer::nova34();
    let yaml = "# overrides\n\"os_compute_api:os-flavor-manage:create\": \"role:member\"\n\
                'os_compute_api:servers:index': '!'\ncontext_is_admin: role:admin or role:boss # bosses\n";
    e.set_rules(file::parse(yaml).unwrap());
    let member = ctx(&["member"], "p1", "u1");
    let boss = ctx(&["boss"], "p1", "b");
    assert!(e.allows(
        &member,
        "os_compute_api:os-flavor-manage:create",
        &target("p1", "u1")
    ));
    assert!(!e.allows(&member, "os_compute_api:servers:index", &target("p1", "u1")));
    // context_is_admin decides is_admin, which every admin rule follows.
    assert!(e.allows(&boss, "os_compute_api:os-services:list", &target("x", "y")));
    let json = r#"{"os_compute_api:os-services:list": "@"}"#;
    e.set_rules(file::parse(json).unwrap());
    assert!(e.allows(
        &member,
        "os_compute_api:os-services:list",
        &target("p1", "u1")
    ));
    assert!(file::parse("a: b\n  nested: x\n").is_err());
    assert!(file::parse("[1, 2]").is_err());
    // enforce_new_defaults = false: the deprecated check strings pass too
    // (nova's old "admin_or_owner": any role in the project).
    let mut old = Enforcer::nova34();
    let anyrole = ctx(&["somerole"], "p1", "u1");
    assert!(!old.allows(
        &anyrole,
        "os_compute_api:servers:create",
        &target("p1", "u1")
    ));
    old.enforce_new_defaults = false;
    assert!(old.allows(
        &anyrole,
        "os_compute_api:servers:create",
        &target("p1", "u1")
    ));
}

/// Every rule name the handlers check is one nova 34 registers (a typo
/// would deny everyone).
#[test]
fn every_rule_the_api_checks_is_registered() {
    let e = Enforcer::nova34();
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let re = regex::Regex::new(r#""((?:os_compute_api|compute):[A-Za-z0-9_:-]+)""#).unwrap();
    let mut missing = Vec::new();
    let mut stack = vec![std::path::PathBuf::from(src)];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("policy/tests.rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                for c in re.captures_iter(&text) {
                    let name = &c[1];
                    // A prefix the handler completes (`{RULE}:index`) is
                    // fine when registered rules start with it.
                    let prefix = format!("{name}:");
                    if !e.has_rule(name) && !e.rule_names().iter().any(|r| r.starts_with(&prefix)) {
                        missing.push(format!("{}: {name}", p.display()));
                    }
                }
            }
        }
    }
    assert!(missing.is_empty(), "unregistered rules: {missing:#?}");
}
