//! A framework author's own world, hosted through the same library API as the built-in
//! ones: only its `bindgen!` call, its host state and a `World` impl are written here.
//!
//! The world (`examples/custom-world/wit/moderation.wit`) imports a host blocklist and
//! exports a scorer; the guest is `guest-rust/scorer`.

use std::collections::HashSet;

use wasmtime::Store;
use wasmtime::component::{HasSelf, InstancePre, Linker};
use witplug::{Capabilities, CapabilityDenied, Error, Plugin, PluginOptions, PluginState, World};

use crate::common::{component, runtime};

wasmtime::component::bindgen!({
    world: "moderation",
    path: "../../examples/custom-world/wit",
    exports: { default: async },
    // Trappable, so that the host can refuse the lookup (a capability check).
    imports: { "acme:moderation/wordlist.is-blocked": trappable },
});

use acme::moderation::wordlist;
use exports::acme::moderation::scorer::Verdict;

/// The host state this world needs: the blocklist behind `wordlist.is-blocked`, and
/// whether this plugin was granted lookups at all.
#[derive(Default)]
pub struct Blocklist {
    words: HashSet<String>,
    lookups: usize,
    lookups_granted: bool,
}

impl wordlist::Host for Blocklist {
    fn is_blocked(&mut self, word: String) -> wasmtime::Result<bool> {
        // The capability check comes first, before any effect.
        if !self.lookups_granted {
            return Err(CapabilityDenied::new("wordlist lookups").into());
        }
        self.lookups += 1;
        Ok(self.words.contains(&word))
    }
}

impl World for Moderation {
    const NAME: &'static str = "acme:moderation/moderation@0.1.0";
    type Data = Blocklist;
    type Pre = ModerationPre<PluginState<Blocklist>>;

    fn add_to_linker(linker: &mut Linker<PluginState<Blocklist>>) -> wasmtime::Result<()> {
        Moderation::add_to_linker::<_, HasSelf<Blocklist>>(linker, |state| &mut state.data)
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
    let (bindings, store) = instance.parts()?;
    let result = bindings
        .acme_moderation_scorer()
        .call_score(store, message)
        .await;
    let verdict = instance.finish(SCORE, result)?;
    Ok((verdict, instance.state().data.lookups))
}

fn blocklist() -> Blocklist {
    Blocklist {
        words: ["spam", "scam"].into_iter().map(String::from).collect(),
        lookups: 0,
        lookups_granted: true,
    }
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
}

#[tokio::test]
async fn a_custom_world_runs_with_its_own_host_state() {
    let options = PluginOptions::default()
        .name("moderator")
        .capabilities(Capabilities::none());
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
    .err()
    .expect("not a moderation plugin");
    let message = error.to_string();
    assert!(
        message.contains("does not implement world `acme:moderation/moderation@0.1.0`"),
        "{message}"
    );
    // The first thing that does not fit is named: here an import the world does not offer.
    assert!(
        message.contains("witplug:plugin/logging@0.1.0"),
        "{message}"
    );
}
