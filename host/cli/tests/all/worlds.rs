//! `BuiltinWorld::of`: which built-in world a component implements, from its names alone.

use witplug::BuiltinWorld;

use crate::common::component;

#[test]
fn every_guest_is_told_its_world() {
    let expected = [
        ("rust-email-normalizer", Some(BuiltinWorld::Transform)),
        ("go-email-normalizer", Some(BuiltinWorld::Transform)),
        ("rust-aggregator", Some(BuiltinWorld::Aggregator)),
        ("rust-filetool", Some(BuiltinWorld::Command)),
        ("go-filetool", Some(BuiltinWorld::Command)),
    ];
    for (name, world) in expected {
        assert_eq!(BuiltinWorld::of(&component(name)), world, "{name}");
    }
}

#[test]
fn a_command_misses_the_plugin_exports_by_name() {
    let filetool = component("rust-filetool");
    assert_eq!(
        BuiltinWorld::Transform.mismatches(&filetool),
        [
            "no export `witplug:plugin/metadata`",
            "no export `witplug:plugin/transformer`"
        ]
    );
    let normalizer = component("rust-email-normalizer");
    let reasons = BuiltinWorld::Command.mismatches(&normalizer);
    assert!(
        reasons.contains(&"no export `wasi:cli/run`".to_owned()),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("import `witplug:plugin/logging")),
        "a command gets no witplug imports: {reasons:?}"
    );
}
