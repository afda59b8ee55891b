//! Grants of a world's own capabilities: typed, deny by default, checked by the host
//! functions of a world defined outside witplug.
//!
//! A framework author whose world imports, say, a mail sender declares what may be granted
//! as a type ([`WorldGrant`]), grants it per plugin with [`Capabilities::grant`], and checks
//! it first thing in the host function with [`PluginState::require`], which gives the grant
//! (its limits, allow-lists) or [`CapabilityDenied`] naming [`WorldGrant::CAPABILITY`].
//! A plugin granted nothing gets nothing; the load-time probe instance never has any.
//!
//! [`Capabilities::grant`]: crate::Capabilities::grant
//! [`PluginState::require`]: crate::PluginState::require

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::capabilities::CapabilityDenied;

/// A capability of a world of its own, e.g. `struct SendMail { to_domains: Vec<String> }`.
///
/// The value is what the host function needs to enforce it (how far it reaches); its
/// presence is the grant.
pub trait WorldGrant: std::fmt::Debug + Send + Sync + 'static {
    /// What is denied when it is not granted, as errors and `-v` grant lines name it,
    /// e.g. `"sending mail"`.
    const CAPABILITY: &'static str;
}

/// A grant with its type erased, still able to say what it is.
trait AnyGrant: Any + Send + Sync {
    fn as_any(&self) -> &dyn Any;
    fn line(&self) -> String;
}

impl<G: WorldGrant> AnyGrant for G {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn line(&self) -> String {
        format!("{}: {self:?}", G::CAPABILITY)
    }
}

/// The world grants of one plugin: at most one of each type. Shared by every instance of
/// the plugin (cloning is a reference count).
#[derive(Clone, Default)]
pub(crate) struct WorldGrants {
    grants: Arc<BTreeMap<TypeId, Arc<dyn AnyGrant>>>,
}

impl WorldGrants {
    /// Adds `grant`; `Err` with the capability's name if one of its type is there already.
    pub(crate) fn insert<G: WorldGrant>(&mut self, grant: G) -> Result<(), &'static str> {
        let grants = Arc::make_mut(&mut self.grants);
        if grants.contains_key(&TypeId::of::<G>()) {
            return Err(G::CAPABILITY);
        }
        grants.insert(TypeId::of::<G>(), Arc::new(grant));
        Ok(())
    }

    pub(crate) fn get<G: WorldGrant>(&self) -> Option<&G> {
        self.grants
            .get(&TypeId::of::<G>())
            .and_then(|grant| grant.as_any().downcast_ref::<G>())
    }

    pub(crate) fn require<G: WorldGrant>(&self) -> Result<&G, CapabilityDenied> {
        self.get::<G>()
            .ok_or_else(|| CapabilityDenied::new(G::CAPABILITY))
    }

    /// One line per grant, `CAPABILITY: value`.
    pub(crate) fn lines(&self) -> impl Iterator<Item = String> + '_ {
        self.grants.values().map(|grant| grant.line())
    }
}

impl std::fmt::Debug for WorldGrants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.lines()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct SendMail {
        to_domains: Vec<&'static str>,
    }
    impl WorldGrant for SendMail {
        const CAPABILITY: &'static str = "sending mail";
    }

    #[derive(Debug)]
    struct ReadInbox;
    impl WorldGrant for ReadInbox {
        const CAPABILITY: &'static str = "reading the inbox";
    }

    #[test]
    fn nothing_is_granted_by_default_and_a_denial_names_the_capability() {
        let grants = WorldGrants::default();
        assert!(grants.get::<SendMail>().is_none());
        let denied = grants.require::<SendMail>().expect_err("not granted");
        assert_eq!(
            denied.to_string(),
            CapabilityDenied::new("sending mail").to_string()
        );
    }

    #[test]
    fn a_grant_gives_exactly_its_own_type_and_value() {
        let mut grants = WorldGrants::default();
        let mail = SendMail {
            to_domains: vec!["example.org"],
        };
        grants.insert(mail).expect("first grant");
        assert_eq!(
            grants.require::<SendMail>().expect("granted").to_domains,
            ["example.org"]
        );
        // Another capability is not implied by it.
        assert!(grants.require::<ReadInbox>().is_err());
        assert_eq!(
            grants.lines().collect::<Vec<_>>(),
            [r#"sending mail: SendMail { to_domains: ["example.org"] }"#]
        );
    }

    #[test]
    fn a_capability_granted_twice_is_refused_not_widened() {
        let mut grants = WorldGrants::default();
        grants
            .insert(SendMail {
                to_domains: vec!["example.org"],
            })
            .expect("first grant");
        let twice = grants.insert(SendMail {
            to_domains: vec!["*"],
        });
        assert_eq!(twice, Err("sending mail"));
        assert_eq!(
            grants.get::<SendMail>().map(|g| g.to_domains.clone()),
            Some(vec!["example.org"]),
            "the first grant stands"
        );
    }
}
