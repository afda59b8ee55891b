//! A framework author's own world, hosted through the same library API as the built-in
//! ones: only its `bindgen!` call, its host state and a `World` impl are written here.
//!
//! The world (`examples/custom-world/wit/moderation.wit`) imports a host blocklist and
//! exports a scorer; the guest is `guest-rust/scorer`.

use std::collections::HashSet;

// witplug's own wasmtime, as a framework author without a wasmtime dependency would use it.
use witplug::wasmtime::component::{HasSelf, InstancePre, Linker};
use witplug::wasmtime::{self, Store};
use witplug::{
    Capabilities, CapabilityDenied, Error, GrantError, Plugin, PluginConfig, PluginOptions,
    PluginState, World, WorldGrant,
};

use crate::common::{component, runtime};

wasmtime::component::bindgen!({
    world: "moderation",
    path: "../../examples/custom-world/wit",
    wasmtime_crate: witplug::wasmtime,
    exports: { default: async },
    // Trappable, so that the host can refuse the lookup (a capability check).
    imports: { "acme:moderation/wordlist.is-blocked": trappable },
});

use acme::moderation::wordlist;
use exports::acme::moderation::scorer::Verdict;

/// The host state this world needs: the blocklist behind `wordlist.is-blocked`.
#[derive(Default)]
pub struct Blocklist {
    words: HashSet<String>,
    lookups: usize,
}

/// The world's own capability: lookups in the host's wordlist, at most `max` per instance.
/// Not granted unless the host says so (`Capabilities::grant`).
#[derive(Debug)]
pub struct WordlistLookups {
    max: usize,
}

impl WorldGrant for WordlistLookups {
    const CAPABILITY: &'static str = "wordlist lookups";
}

// On `PluginState`, not on `Blocklist` alone, so that the grant can be checked.
impl wordlist::Host for PluginState<Blocklist> {
    fn is_blocked(&mut self, word: String) -> wasmtime::Result<bool> {
        // The capability check comes first, before any effect.
        let max = self.require::<WordlistLookups>()?.max;
        if self.data.lookups >= max {
            return Err(CapabilityDenied::new(format!("more than {max} wordlist lookups")).into());
        }
        self.data.lookups += 1;
        Ok(self.data.words.contains(&word))
    }
}

impl World for Moderation {
    const NAME: &'static str = "acme:moderation/moderation@0.1.0";
    type Data = Blocklist;
    type Pre = ModerationPre<PluginState<Blocklist>>;

    fn add_to_linker(linker: &mut Linker<PluginState<Blocklist>>) -> wasmtime::Result<()> {
        Moderation::add_to_linker::<_, HasSelf<PluginState<Blocklist>>>(linker, |state| state)
    }

    fn prepare(pre: InstancePre<PluginState<Blocklist>>) -> wasmtime::Result<Self::Pre> {
        ModerationPre::new(pre)
    }

    async fn instantiate(
        pre: &Self::Pre,
        store: &mut Store<PluginState<Blocklist>>,
    ) -> wasmtime::Result<Self> {
        pre.instantiate_async(store).await
    }
}

const SCORE: &str = "acme:moderation/scorer#score";

async fn score(plugin: &Plugin<Moderation>, message: &str) -> Result<(Verdict, usize), Error> {
    let mut instance = plugin.instantiate().await?;
    let verdict = instance
        .call(SCORE, async |bindings, store| {
            bindings
                .acme_moderation_scorer()
                .call_score(store, message)
                .await
        })
        .await?;
    Ok((verdict, instance.state().data.lookups))
}

fn blocklist() -> Blocklist {
    Blocklist {
        words: ["spam", "scam"].into_iter().map(String::from).collect(),
        lookups: 0,
    }
}

/// Lookups granted, up to `max`.
fn lookups(max: usize) -> Capabilities {
    Capabilities::none()
        .grant(WordlistLookups { max })
        .expect("one grant")
}

#[tokio::test]
async fn a_host_function_can_deny_a_capability_with_a_typed_error() {
    let plugin: Plugin<Moderation> = Plugin::with_data(
        runtime(),
        &component("rust-scorer"),
        PluginOptions::default().name("moderator"),
        Blocklist::default,
    )
    .await
    .expect("links");
    let error = score(&plugin, "hello")
        .await
        .expect_err("lookups were not granted");
    assert!(
        matches!(&error, Error::CapabilityDenied { plugin, export, capability }
            if plugin == "moderator" && export == SCORE && capability == "wordlist lookups"),
        "{error:?}"
    );
    assert_eq!(
        (error.plugin(), error.export()),
        (Some("moderator"), Some(SCORE))
    );
}

#[tokio::test]
async fn a_failed_call_poisons_the_instance_for_every_later_call() {
    let plugin: Plugin<Moderation> = Plugin::with_data(
        runtime(),
        &component("rust-scorer"),
        PluginOptions::default().name("moderator"),
        Blocklist::default,
    )
    .await
    .expect("links");
    let mut instance = plugin.instantiate().await.expect("instantiates");
    let score = async |instance: &mut witplug::Instance<Moderation>| {
        instance
            .call(SCORE, async |bindings, store| {
                bindings
                    .acme_moderation_scorer()
                    .call_score(store, "hi")
                    .await
            })
            .await
    };
    let first = score(&mut instance).await.expect_err("lookups are denied");
    assert!(matches!(first, Error::CapabilityDenied { .. }), "{first:?}");
    // The guest was unwound mid-call: the instance is never entered again.
    let second = score(&mut instance).await.expect_err("poisoned");
    assert!(
        matches!(&second, Error::Poisoned { plugin, export } if plugin == "moderator" && export == SCORE),
        "{second:?}"
    );
    assert!(
        format!("{instance:?}").contains(r#"poisoned_by: Some("acme:moderation/scorer#score")"#),
        "{instance:?}"
    );
}

#[tokio::test]
async fn a_misnamed_export_is_refused_before_the_guest_runs_naming_the_real_ones() {
    let plugin: Plugin<Moderation> = Plugin::with_data(
        runtime(),
        &component("rust-scorer"),
        PluginOptions::default()
            .name("moderator")
            .capabilities(lookups(100)),
        blocklist,
    )
    .await
    .expect("links");
    let mut instance = plugin.instantiate().await.expect("instantiates");
    // A typo, the versioned spelling, a function of no interface.
    for wrong in [
        "acme:moderation/scorer#scroe",
        "acme:moderation/scorer@0.1.0#score",
        "score",
    ] {
        let error = instance
            .call(wrong, async |bindings, store| {
                bindings
                    .acme_moderation_scorer()
                    .call_score(store, "spam")
                    .await
            })
            .await
            .expect_err(wrong);
        assert!(
            matches!(&error, Error::UnknownExport { plugin, export, exports }
                if plugin == "moderator" && export == wrong && exports == SCORE),
            "{error:?}"
        );
        assert_eq!(error.export(), Some(wrong));
    }
    // Nothing ran (no lookup was made) and nothing is poisoned: the right name works.
    assert_eq!(instance.state().data.lookups, 0);
    let verdict = instance
        .call(SCORE, async |bindings, store| {
            bindings
                .acme_moderation_scorer()
                .call_score(store, "spam")
                .await
        })
        .await
        .expect("scores");
    assert_eq!(verdict.flagged, ["spam"]);
}

#[tokio::test]
async fn calls_run_on_spawned_tasks_and_debug_output_holds_no_configuration() {
    let options = PluginOptions::default()
        .name("moderator")
        .capabilities(lookups(100))
        .config(PluginConfig::new().set("api-key", "s3cret-value"));
    let plugin: Plugin<Moderation> =
        Plugin::with_data(runtime(), &component("rust-scorer"), options, blocklist)
            .await
            .expect("links");
    let shown = format!("{plugin:?}");
    assert!(
        shown.contains("moderator") && shown.contains(Moderation::NAME),
        "{shown}"
    );
    assert!(!shown.contains("s3cret-value"), "{shown}");
    let instance = plugin.instantiate().await.expect("instantiates");
    let shown = format!("{instance:?}");
    assert!(
        shown.contains("moderator") && shown.contains("calls: 0"),
        "{shown}"
    );
    assert!(!shown.contains("s3cret-value"), "{shown}");
    drop(instance);
    // `Instance::call`'s future is `Send`, so a custom world's calls can be spawned.
    let task = tokio::spawn(async move { score(&plugin, "spam").await });
    let (verdict, _) = task.await.expect("joins").expect("score");
    assert_eq!(verdict.flagged, ["spam"]);
}

#[tokio::test]
async fn a_custom_world_runs_with_its_own_host_state() {
    let options = PluginOptions::default()
        .name("moderator")
        .capabilities(lookups(100));
    let plugin: Plugin<Moderation> =
        Plugin::with_data(runtime(), &component("rust-scorer"), options, blocklist)
            .await
            .expect("links");
    let (verdict, lookups) = score(&plugin, "BUY now: Spam, SCAM and more spam!")
        .await
        .expect("score");
    assert_eq!(verdict.flagged, ["spam", "scam", "spam"]);
    // 3 blocked words (30) + shouted `BUY` (1); `SCAM` is blocked, not counted as shouting.
    assert_eq!(verdict.score, 31);
    assert_eq!(lookups, 7, "the guest asked the host once per word");
    assert_eq!(plugin.name(), "moderator");
}

#[tokio::test]
async fn a_component_of_another_world_is_refused_by_the_custom_world() {
    let error = Plugin::<Moderation>::with_data(
        runtime(),
        &component("rust-email-normalizer"),
        PluginOptions::default(),
        Blocklist::default,
    )
    .await
    .expect_err("not a moderation plugin");
    let message = error.to_string();
    assert!(
        message.contains("does not implement world `acme:moderation/moderation@0.1.0`"),
        "{message}"
    );
    // What the world misses is said first, then the import the world does not offer.
    let export = message
        .find("acme:moderation/scorer")
        .unwrap_or_else(|| panic!("the missing export is named: {message}"));
    let import = message
        .find("witplug:plugin/logging@0.1.0")
        .unwrap_or_else(|| panic!("the unknown import is named: {message}"));
    assert!(export < import, "the export comes first: {message}");
}

/// The same world with `bindgen!`'s default, synchronous exports: a mistake witplug cannot
/// see at load time, so the first call must say what to change.
mod sync_exports {
    use witplug::wasmtime::component::{HasSelf, InstancePre, Linker};
    use witplug::wasmtime::{self, Store};
    use witplug::{Error, Plugin, PluginOptions, PluginState, World};

    use crate::common::{component, runtime};

    wasmtime::component::bindgen!({
        world: "moderation",
        path: "../../examples/custom-world/wit",
        wasmtime_crate: witplug::wasmtime,
    });

    #[derive(Default)]
    pub struct NoWords;

    impl acme::moderation::wordlist::Host for NoWords {
        fn is_blocked(&mut self, _word: String) -> bool {
            false
        }
    }

    impl World for Moderation {
        const NAME: &'static str = "acme:moderation/moderation@0.1.0";
        type Data = NoWords;
        type Pre = ModerationPre<PluginState<NoWords>>;

        fn add_to_linker(linker: &mut Linker<PluginState<NoWords>>) -> wasmtime::Result<()> {
            Moderation::add_to_linker::<_, HasSelf<NoWords>>(linker, |state| &mut state.data)
        }

        fn prepare(pre: InstancePre<PluginState<NoWords>>) -> wasmtime::Result<Self::Pre> {
            ModerationPre::new(pre)
        }

        async fn instantiate(
            pre: &Self::Pre,
            store: &mut Store<PluginState<NoWords>>,
        ) -> wasmtime::Result<Self> {
            pre.instantiate_async(store).await
        }
    }

    #[tokio::test]
    async fn synchronous_bindings_are_named_as_the_cause_of_a_failed_call() {
        let plugin: Plugin<Moderation> = Plugin::new(
            runtime(),
            &component("rust-scorer"),
            PluginOptions::default().name("moderator"),
        )
        .await
        .expect("links: nothing at load time tells sync bindings apart");
        let mut instance = plugin.instantiate().await.expect("instantiates");
        let error = instance
            .call(super::SCORE, async |bindings, store| {
                bindings.acme_moderation_scorer().call_score(store, "hi")
            })
            .await
            .expect_err("a synchronous call on an async store");
        assert!(matches!(error, Error::Call { .. }), "{error:?}");
        let chain = witplug::error_chain(&error);
        assert!(
            chain.contains("exports: { default: async }") && chain.contains(super::SCORE),
            "{chain}"
        );
    }
}

/// A world grant reaches exactly as far as written: its limit is the host function's to
/// enforce, a second grant of the same capability is refused (not merged or widened), and
/// `-v`'s grant lines show it.
#[tokio::test]
async fn a_world_grant_reaches_exactly_as_far_as_written() {
    let options = PluginOptions::default()
        .name("moderator")
        .capabilities(lookups(3));
    let plugin: Plugin<Moderation> =
        Plugin::with_data(runtime(), &component("rust-scorer"), options, blocklist)
            .await
            .expect("links");
    let (verdict, used) = score(&plugin, "spam scam ham").await.expect("3 lookups");
    assert_eq!((verdict.flagged.len(), used), (2, 3));
    let error = score(&plugin, "spam scam ham eggs")
        .await
        .expect_err("a fourth lookup is beyond the grant");
    assert!(
        matches!(&error, Error::CapabilityDenied { capability, .. }
            if capability == "more than 3 wordlist lookups"),
        "{error:?}"
    );

    let twice = lookups(3).grant(WordlistLookups { max: usize::MAX });
    assert!(
        matches!(&twice, Err(GrantError::DuplicateWorldGrant { capability })
            if *capability == "wordlist lookups"),
        "{twice:?}"
    );
    assert!(
        lookups(3)
            .grant_lines()
            .contains(&"world: wordlist lookups: WordlistLookups { max: 3 }".to_owned()),
        "{:?}",
        lookups(3).grant_lines()
    );
}
