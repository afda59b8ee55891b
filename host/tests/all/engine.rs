//! Engine options: the pooling allocator, and instance reuse for stateless worlds.

use witplug::worlds::transform::Outcome;
use witplug::{
    InstanceReuse, LoadedComponent, Plugin, PluginOptions, Pooling, Record, Runtime, RuntimeConfig,
    TransformPlugin,
};

use crate::common::{component, guest_path, runtime};

fn record(key: &str) -> Record {
    Record {
        key: key.to_owned(),
        fields: vec![],
    }
}

#[tokio::test]
async fn both_languages_run_on_the_pooling_allocator() {
    let pooled = Runtime::with_config(RuntimeConfig {
        pooling: Some(Pooling::default()),
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    for name in [
        "rust-email-normalizer",
        "go-email-normalizer",
        "rust-hostile",
    ] {
        let loaded = LoadedComponent::from_file(&pooled, guest_path(name)).expect("loads");
        let plugin: Plugin<_> = Plugin::new(&pooled, &loaded, PluginOptions::default())
            .await
            .expect("links");
        let plugin = TransformPlugin::from(plugin);
        for _ in 0..3 {
            let outcomes = plugin.process_batch(&[record("k")]).await.expect(name);
            assert_eq!(outcomes.len(), 1, "{name}");
        }
    }
}

async fn faulty(reuse: InstanceReuse) -> TransformPlugin {
    let options = PluginOptions::default().reuse(reuse);
    let plugin: Plugin<_> = Plugin::new(runtime(), &component("rust-faulty"), options)
        .await
        .expect("links");
    TransformPlugin::from(plugin)
}

#[tokio::test]
async fn by_default_every_call_gets_a_fresh_instance() {
    let plugin = faulty(InstanceReuse::Never).await;
    let probe = plugin.plugin().instantiations();
    for _ in 0..5 {
        plugin.process_batch(&[record("k")]).await.expect("call");
    }
    assert_eq!(plugin.plugin().instantiations() - probe, 5);
}

#[tokio::test]
async fn reuse_serves_several_calls_per_instance_and_drops_failed_ones() {
    let plugin = faulty(InstanceReuse::UpTo { max_calls: 3 }).await;
    let probe = plugin.plugin().instantiations();
    for _ in 0..6 {
        assert_eq!(
            plugin.process_batch(&[record("k")]).await.expect("call"),
            [Outcome::Keep(record("k"))]
        );
    }
    assert_eq!(
        plugin.plugin().instantiations() - probe,
        2,
        "3 calls per instance"
    );

    // A trap discards the instance: the next call needs a new one.
    plugin
        .process_batch(&[record("panic")])
        .await
        .expect_err("trap");
    plugin.process_batch(&[record("k")]).await.expect("healthy");
    assert_eq!(plugin.plugin().instantiations() - probe, 4);
}
