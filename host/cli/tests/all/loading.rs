//! Bad component files get specific errors, before anything runs.

use witplug::{
    AggregatorPlugin, CommandPlugin, Error, LoadError, LoadedComponent, PluginOptions,
    TransformPlugin,
};

use crate::common::{guest_path, runtime};

async fn load_transform(path: &std::path::Path) -> Error {
    match TransformPlugin::load(runtime(), path, PluginOptions::default()).await {
        Ok(_) => panic!("{} loaded as a transform plugin", path.display()),
        Err(error) => error,
    }
}

#[tokio::test]
async fn a_missing_file_is_named() {
    let error = load_transform(std::path::Path::new("/no/such/plugin.wasm")).await;
    assert!(
        matches!(&error, Error::Load(LoadError::NotFound { path }) if path.ends_with("plugin.wasm")),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "component file /no/such/plugin.wasm does not exist"
    );
}

#[tokio::test]
async fn a_core_module_is_told_apart_from_a_component() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("core.wasm");
    std::fs::write(
        &path,
        wat::parse_str("(module (func (export \"f\")))").expect("wat"),
    )
    .expect("write");
    let error = load_transform(&path).await;
    assert!(
        matches!(error, Error::Load(LoadError::CoreModule { .. })),
        "{error:?}"
    );
    assert!(error.to_string().contains("not a component"), "{error}");
}

#[tokio::test]
async fn a_file_that_is_not_wasm_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notes.wasm");
    std::fs::write(&path, "hello, I am text").expect("write");
    let error = load_transform(&path).await;
    assert!(
        matches!(error, Error::Load(LoadError::NotWasm { .. })),
        "{error:?}"
    );
}

#[test]
fn corrupt_component_bytes_are_refused_with_the_reason() {
    let mut bytes = std::fs::read(guest_path("rust-email-normalizer")).expect("read guest");
    // Keep the header, cut the body in half: still "a component", no longer a valid one.
    bytes.truncate(bytes.len() / 2);
    let error = LoadedComponent::from_bytes(runtime(), &bytes, "half.wasm")
        .err()
        .expect("corrupt component must not load");
    assert!(matches!(error, LoadError::Invalid { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with("half.wasm is not a valid component: "),
        "{error}"
    );
}

#[tokio::test]
async fn a_component_of_another_world_names_the_missing_export() {
    let error = load_transform(&guest_path("rust-aggregator")).await;
    let Error::Load(LoadError::WorldMismatch {
        world,
        reason,
        exports,
        ..
    }) = &error
    else {
        panic!("expected a world mismatch, got {error:?}");
    };
    assert_eq!(*world, "witplug:plugin/transform-plugin@0.1.0");
    assert!(
        reason.contains("witplug:plugin/transformer@0.1.0"),
        "{reason}"
    );
    assert!(
        exports.contains("witplug:plugin/aggregator@0.1.0"),
        "{exports}"
    );
}

#[tokio::test]
async fn a_command_is_not_a_transform_and_a_transform_is_not_a_command() {
    let error = load_transform(&guest_path("rust-filetool")).await;
    assert!(
        matches!(error, Error::Load(LoadError::WorldMismatch { .. })),
        "{error:?}"
    );

    let error = CommandPlugin::load(
        runtime(),
        guest_path("rust-email-normalizer"),
        PluginOptions::default(),
    )
    .await
    .err()
    .expect("a transform is not a command");
    assert!(
        error
            .to_string()
            .contains("does not implement world `wasi:cli/command@0.2`"),
        "{error}"
    );

    let error = AggregatorPlugin::load(
        runtime(),
        guest_path("go-email-normalizer"),
        PluginOptions::default(),
    )
    .await
    .err()
    .expect("a transform is not an aggregator");
    assert!(
        error.to_string().contains("witplug:plugin/aggregator"),
        "{error}"
    );
}

#[tokio::test]
async fn a_mistyped_export_is_named() {
    let error = load_transform(&guest_path("rust-mistyped")).await;
    let Error::Load(LoadError::WorldMismatch {
        reason, exports, ..
    }) = &error
    else {
        panic!("expected a world mismatch, got {error:?}");
    };
    // wasmtime says what mismatched; the export list names the functions it may be.
    assert!(reason.contains("type mismatch"), "{reason}");
    assert!(
        exports.contains("witplug:plugin/transformer@0.1.0 (interface: process-batch)"),
        "{exports}"
    );
}
