//! The aggregator world: guest-held state behind resources, created, lent and dropped.

use witplug::worlds::aggregator::{GroupTotal, Params};
use witplug::{AggregatorPlugin, Field, Plugin, PluginOptions, Record, Value};

use crate::common::{component, log_collector, runtime};

fn sale(key: &str, region: Value, amount: Value) -> Record {
    Record {
        key: key.to_owned(),
        fields: vec![
            Field {
                name: "region".to_owned(),
                value: region,
            },
            Field {
                name: "amount".to_owned(),
                value: amount,
            },
        ],
    }
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn total(group: &str, count: u64, sum: f64) -> GroupTotal {
    GroupTotal {
        group: group.to_owned(),
        count,
        sum,
    }
}

fn by_region() -> Params {
    Params {
        group_by: "region".to_owned(),
        sum_field: Some("amount".to_owned()),
    }
}

async fn aggregator(options: PluginOptions) -> AggregatorPlugin {
    let plugin: Plugin<_> = Plugin::new(runtime(), &component("rust-aggregator"), options)
        .await
        .expect("links");
    AggregatorPlugin::from(plugin)
}

#[tokio::test]
async fn state_lives_in_the_guest_across_calls() {
    let mut instance = aggregator(PluginOptions::default())
        .await
        .start()
        .await
        .expect("start");
    let sales = instance.create(&by_region()).await.expect("create");
    let counted = instance
        .add(
            &sales,
            &[
                sale("1", text("eu"), Value::Integer(10)),
                sale("2", text("us"), Value::Float(2.5)),
            ],
        )
        .await
        .expect("add");
    assert_eq!(counted, Ok(2));
    let counted = instance
        .add(
            &sales,
            &[
                sale("3", text("eu"), Value::Null),
                sale("4", Value::Null, Value::Integer(99)),
            ],
        )
        .await
        .expect("add");
    assert_eq!(
        counted,
        Ok(1),
        "a record without the group field is skipped"
    );
    let snapshot = instance.snapshot(&sales).await.expect("snapshot");
    assert_eq!(snapshot, [total("eu", 2, 10.0), total("us", 1, 2.5)]);
}

#[tokio::test]
async fn a_refused_batch_changes_nothing() {
    let mut instance = aggregator(PluginOptions::default())
        .await
        .start()
        .await
        .expect("start");
    let sales = instance.create(&by_region()).await.expect("create");
    instance
        .add(&sales, &[sale("1", text("eu"), Value::Integer(1))])
        .await
        .expect("add")
        .expect("ok");
    let refused = instance
        .add(
            &sales,
            &[
                sale("2", text("eu"), Value::Integer(5)),
                sale("3", text("eu"), text("lots")),
            ],
        )
        .await
        .expect("call succeeds");
    assert_eq!(
        refused,
        Err("record `3`: field `amount` is not numeric".to_owned())
    );
    assert_eq!(
        instance.snapshot(&sales).await.expect("snapshot"),
        [total("eu", 1, 1.0)]
    );
}

#[tokio::test]
async fn resources_are_independent_lent_back_and_dropped() {
    let (sink, lines) = log_collector();
    let mut instance = aggregator(PluginOptions::default().log_sink(sink))
        .await
        .start()
        .await
        .expect("start");
    let a = instance.create(&by_region()).await.expect("create a");
    let b = instance.create(&by_region()).await.expect("create b");
    instance
        .add(&a, &[sale("1", text("eu"), Value::Integer(1))])
        .await
        .expect("add")
        .expect("ok");
    instance
        .add(
            &b,
            &[
                sale("2", text("eu"), Value::Integer(2)),
                sale("3", text("us"), Value::Integer(3)),
            ],
        )
        .await
        .expect("add")
        .expect("ok");
    assert_eq!(
        instance.snapshot(&a).await.expect("snapshot"),
        [total("eu", 1, 1.0)]
    );

    // `b` is lent to the guest for the merge, and still usable afterwards.
    instance.merge(&a, &b).await.expect("merge");
    assert_eq!(
        instance.snapshot(&a).await.expect("snapshot"),
        [total("eu", 2, 3.0), total("us", 1, 3.0)]
    );
    assert_eq!(
        instance.snapshot(&b).await.expect("snapshot"),
        [total("eu", 1, 2.0), total("us", 1, 3.0)]
    );

    let dropped = || {
        lines
            .lock()
            .expect("lock")
            .iter()
            .filter(|l| l.message == "aggregation dropped")
            .count()
    };
    assert_eq!(dropped(), 0);
    instance.drop_aggregation(b).await.expect("drop b");
    assert_eq!(
        dropped(),
        1,
        "the guest destructor ran when the host dropped the handle"
    );
    assert_eq!(
        instance.snapshot(&a).await.expect("a lives on"),
        [total("eu", 2, 3.0), total("us", 1, 3.0)]
    );
}

#[tokio::test]
async fn instances_do_not_share_state() {
    let plugin = aggregator(PluginOptions::default()).await;
    let mut first = plugin.start().await.expect("start");
    let mut second = plugin.start().await.expect("start");
    let one = first.create(&by_region()).await.expect("create");
    let two = second.create(&by_region()).await.expect("create");
    first
        .add(&one, &[sale("1", text("eu"), Value::Integer(1))])
        .await
        .expect("add")
        .expect("ok");
    assert_eq!(second.snapshot(&two).await.expect("snapshot"), []);
    let info = plugin.describe().await.expect("describe");
    assert_eq!(info.name, "aggregator");
}
