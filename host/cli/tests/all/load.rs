//! Many concurrent calls across several plugins, one of them hostile: every well-behaved
//! call completes with the right answer.

use std::time::Duration;

use witplug::worlds::transform::Outcome;
use witplug::{Error, Field, Limits, PluginOptions, Record, TransformPlugin, Value};

use crate::common::{component, runtime};

async fn plugin(name: &str, limits: Limits) -> TransformPlugin {
    let options = PluginOptions::default().name(name).limits(limits);
    TransformPlugin::new(runtime(), &component(name), options)
        .await
        .expect("links")
}

fn batch(i: usize) -> Vec<Record> {
    (0..10)
        .map(|j| Record {
            key: format!("{i}-{j}"),
            fields: vec![Field {
                name: "email".to_owned(),
                value: Value::Text(format!(" User{j}@Example{i}.COM ; u{i}@b.org")),
            }],
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_across_plugins_survive_a_hostile_neighbour() {
    let rust = plugin("rust-email-normalizer", Limits::default()).await;
    let go = plugin("go-email-normalizer", Limits::default()).await;
    let hostile = plugin(
        "rust-hostile",
        Limits {
            call_timeout: Some(Duration::from_millis(200)),
            ..Limits::default()
        },
    )
    .await;

    // The expected outcomes, computed one call at a time, before any concurrency.
    let mut expected = Vec::new();
    for i in 0..8 {
        expected.push(rust.process_batch(&batch(i)).await.expect("serial call"));
    }

    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..160 {
        let (rust, go, hostile) = (rust.clone(), go.clone(), hostile.clone());
        let expected = expected[task % 8].clone();
        tasks.spawn(async move {
            let i = task % 8;
            match task % 4 {
                0 => assert_eq!(rust.process_batch(&batch(i)).await.expect("rust"), expected),
                1 => assert_eq!(go.process_batch(&batch(i)).await.expect("go"), expected),
                2 => {
                    let error = hostile
                        .process_batch(&[Record {
                            key: "spin".into(),
                            fields: vec![],
                        }])
                        .await;
                    assert!(matches!(error, Err(Error::Timeout { .. })), "{error:?}");
                }
                _ => {
                    let error = hostile
                        .process_batch(&[Record {
                            key: "panic".into(),
                            fields: vec![],
                        }])
                        .await;
                    assert!(matches!(error, Err(Error::Trap { .. })), "{error:?}");
                }
            }
            task
        });
    }
    let mut finished = 0;
    while let Some(result) = tasks.join_next().await {
        result.expect("task did not panic");
        finished += 1;
    }
    assert_eq!(finished, 160);
    assert!(
        expected
            .iter()
            .flatten()
            .any(|o| matches!(o, Outcome::Split(_)))
    );
}
