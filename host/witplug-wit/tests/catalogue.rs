//! A catalogue of changes to a world, each checked for the breaks it names and against
//! the component model's own type check (wit-component's semver check): the named
//! comparison must reach the same verdict in both directions for every entry.

use witplug_wit::{Direction, Report, WitSource, WorldChange, check};

const BASE: &str = r#"
package acme:rules@1.0.0;

interface types {
    record item { name: string, count: u32 }
    variant outcome { keep(item), drop(string), error }
    enum level { low, high }
    flags perms { read, write }
}

interface host-api {
    use types.{level};
    log: func(level: level, message: string);
    get: func(key: string) -> option<string>;
}

interface rule {
    use types.{item, outcome, perms};
    resource session {
        constructor(name: string);
        feed: func(items: list<item>) -> list<outcome>;
    }
    process: func(items: list<item>, mode: perms) -> list<outcome>;
}

world plugin {
    import host-api;
    export rule;
}

world other {
    export rule;
}
"#;

/// The comparison of BASE with BASE edited by `edit` (pairs of text to replace).
fn compare(edits: &[(&str, &str)]) -> Report {
    let mut changed = BASE.to_owned();
    for (from, to) in edits {
        assert!(
            changed.contains(from),
            "the edit's text `{from}` is not in BASE"
        );
        changed = changed.replacen(from, to, 1);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in [("old", BASE), ("new", changed.as_str())] {
        std::fs::create_dir(dir.path().join(name)).expect("mkdir");
        std::fs::write(dir.path().join(name).join("rules.wit"), text).expect("write");
    }
    let old = WitSource::load(dir.path().join("old")).expect("OLD loads");
    let new = WitSource::load(dir.path().join("new")).expect("NEW loads");
    check(&old, &new, None).expect("compared")
}

/// The breaks of world `plugin` in `direction`, as `item: problem` lines.
fn breaks(report: &Report, direction: Direction) -> Vec<String> {
    let world = report
        .worlds
        .iter()
        .find(|w| w.world == "plugin")
        .expect("world plugin is compared");
    world
        .breaks(direction)
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// Asserts what each direction gives: `None` for "fits", else a text every break list
/// must contain; and that the component model's type check agrees.
fn expect(edits: &[(&str, &str)], old_on_new: Option<&str>, new_on_old: Option<&str>) {
    let report = compare(edits);
    for (direction, expected) in [
        (Direction::OldPluginsOnNewHosts, old_on_new),
        (Direction::NewPluginsOnOldHosts, new_on_old),
    ] {
        let found = breaks(&report, direction);
        match expected {
            None => assert!(
                found.is_empty(),
                "{direction}: expected a fit, got {found:#?}"
            ),
            Some(text) => assert!(
                found.iter().any(|b| b.contains(text)),
                "{direction}: expected a break mentioning `{text}`, got {found:#?}"
            ),
        }
        // Every break is named: none falls back on the type check's own words.
        assert!(
            found.iter().all(|b| !b.contains("type check refuses")),
            "{direction}: a break the comparison did not name: {found:#?}"
        );
    }
    let world = report
        .worlds
        .iter()
        .find(|w| w.world == "plugin")
        .expect("world plugin");
    let WorldChange::Compared { type_check, .. } = &world.change else {
        panic!("world plugin should be compared");
    };
    assert_eq!(
        *type_check,
        Some([old_on_new.is_none(), new_on_old.is_none()]),
        "the component model's type check disagrees with the named changes:\n{report}"
    );
}

#[test]
fn a_doc_comment_changes_nothing() {
    expect(
        &[("    get: func", "    /// Reads a key.\n    get: func")],
        None,
        None,
    );
}

#[test]
fn a_version_bump_alone_changes_nothing() {
    expect(&[("acme:rules@1.0.0", "acme:rules@1.1.0")], None, None);
}

#[test]
fn a_removed_export_function_breaks_new_plugins_on_old_hosts() {
    expect(
        &[(
            "    process: func(items: list<item>, mode: perms) -> list<outcome>;\n",
            "",
        )],
        None,
        Some("acme:rules/rule.process: removed from NEW's exports"),
    );
}

#[test]
fn an_added_export_function_breaks_old_plugins_on_new_hosts() {
    expect(
        &[(
            "    process: func",
            "    describe: func() -> string;\n    process: func",
        )],
        Some("acme:rules/rule.describe: added to NEW's exports"),
        None,
    );
}

#[test]
fn an_added_import_function_breaks_new_plugins_on_old_hosts() {
    expect(
        &[("    get: func", "    now: func() -> u64;\n    get: func")],
        None,
        Some("acme:rules/host-api.now: added to NEW's imports"),
    );
}

#[test]
fn a_removed_import_function_breaks_old_plugins_on_new_hosts() {
    expect(
        &[("    get: func(key: string) -> option<string>;\n", "")],
        Some("acme:rules/host-api.get: removed from NEW's imports"),
        None,
    );
}

#[test]
fn a_changed_parameter_type_breaks_both_ways_and_names_the_function() {
    let change = "acme:rules/host-api.get: parameter `key` changed type from `string` to `u32`";
    expect(
        &[("get: func(key: string)", "get: func(key: u32)")],
        Some(change),
        Some(change),
    );
}

#[test]
fn a_renamed_parameter_breaks_both_ways() {
    let change = "parameter 1 renamed from `key` to `name`";
    expect(
        &[("get: func(key: string)", "get: func(name: string)")],
        Some(change),
        Some(change),
    );
}

#[test]
fn an_added_parameter_breaks_both_ways() {
    let change = "takes 1 parameter in OLD, 2 parameters in NEW";
    expect(
        &[(
            "get: func(key: string)",
            "get: func(key: string, default: string)",
        )],
        Some(change),
        Some(change),
    );
}

#[test]
fn a_changed_result_breaks_both_ways() {
    let change = "result changed from `option<string>` to `string`";
    expect(
        &[("-> option<string>;", "-> string;")],
        Some(change),
        Some(change),
    );
}

#[test]
fn an_added_variant_case_breaks_both_ways() {
    let change = "acme:rules/types.outcome: case `split` added";
    expect(
        &[(
            "drop(string), error }",
            "drop(string), error, split(list<item>) }",
        )],
        Some(change),
        Some(change),
    );
}

#[test]
fn a_changed_case_payload_breaks_both_ways() {
    let change = "case `drop` changed from `string` to `u32`";
    expect(&[("drop(string)", "drop(u32)")], Some(change), Some(change));
}

#[test]
fn an_added_record_field_breaks_both_ways() {
    let change = "acme:rules/types.item: field `tags` added";
    expect(
        &[("count: u32 }", "count: u32, tags: list<string> }")],
        Some(change),
        Some(change),
    );
}

#[test]
fn reordered_record_fields_break_both_ways() {
    let change = "fields reordered (from name, count to count, name)";
    expect(
        &[(
            "{ name: string, count: u32 }",
            "{ count: u32, name: string }",
        )],
        Some(change),
        Some(change),
    );
}

#[test]
fn an_added_enum_case_breaks_both_ways() {
    let change = "acme:rules/types.level: case `critical` added";
    expect(
        &[("{ low, high }", "{ low, high, critical }")],
        Some(change),
        Some(change),
    );
}

#[test]
fn an_added_flag_breaks_both_ways() {
    let change = "acme:rules/types.perms: flag `admin` added";
    expect(
        &[("{ read, write }", "{ read, write, admin }")],
        Some(change),
        Some(change),
    );
}

#[test]
fn a_record_become_a_variant_breaks_both_ways() {
    let change = "was a record in OLD, is a variant in NEW";
    expect(
        &[(
            "record item { name: string, count: u32 }",
            "variant item { name(string), count(u32) }",
        )],
        Some(change),
        Some(change),
    );
}

#[test]
fn a_removed_resource_method_breaks_new_plugins_on_old_hosts() {
    expect(
        &[(
            "        feed: func(items: list<item>) -> list<outcome>;\n",
            "",
        )],
        None,
        Some("acme:rules/rule.[method]session.feed: removed from NEW's exports"),
    );
}

#[test]
fn a_removed_export_interface_breaks_new_plugins_on_old_hosts() {
    expect(
        &[(
            "world plugin {\n    import host-api;\n    export rule;\n}",
            "world plugin {\n    import host-api;\n}",
        )],
        None,
        Some("acme:rules/rule: removed from NEW's exports"),
    );
}

#[test]
fn a_removed_world_breaks_its_old_plugins() {
    let report = compare(&[("world other {\n    export rule;\n}\n", "")]);
    let other = report
        .worlds
        .iter()
        .find(|w| w.world == "other")
        .expect("world other is reported");
    assert!(matches!(other.change, WorldChange::Removed));
    assert!(!report.holds(Direction::OldPluginsOnNewHosts));
    assert!(report.holds(Direction::NewPluginsOnOldHosts));
    let text = report.to_string();
    assert!(text.contains("world other: removed in NEW"), "{text}");
}

#[test]
fn the_report_names_each_direction_and_change() {
    let report = compare(&[("get: func(key: string)", "get: func(key: u32)")]);
    let text = report.to_string();
    assert!(text.contains("OLD: acme:rules@1.0.0"), "{text}");
    assert!(
        text.contains("plugins of OLD on hosts of NEW: BREAK"),
        "{text}"
    );
    assert!(
        text.contains("    - acme:rules/host-api.get: parameter `key` changed type"),
        "{text}"
    );
    assert!(text.contains("world other:"), "{text}");
    assert!(
        text.contains("the component model's type check agrees"),
        "{text}"
    );
}

#[test]
fn unreadable_and_invalid_inputs_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nowhere");
    let error = WitSource::load(&missing)
        .err()
        .expect("a missing path fails");
    assert!(error.to_string().contains("nowhere"), "{error}");

    let bad = dir.path().join("bad.wit");
    std::fs::write(
        &bad,
        "package a:b;\ninterface i { f: func(x: nosuchtype); }\n",
    )
    .expect("write");
    let error = WitSource::load(&bad).err().expect("invalid WIT fails");
    let text = error.to_string();
    assert!(
        text.contains("bad.wit") && text.contains("nosuchtype"),
        "{text}"
    );

    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"\0asm junk").expect("write");
    let error = WitSource::load(&junk).err().expect("junk wasm fails");
    assert!(error.to_string().contains("junk.wasm"), "{error}");
}
