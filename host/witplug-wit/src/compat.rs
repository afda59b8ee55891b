//! Whether plugins and hosts of two versions of a world still fit each other.
//!
//! A plugin fits a host when every export the host calls is there with the same type, and
//! every import the plugin calls is offered with the same type: the component model has
//! no subtyping of records, variants or functions, so "the same" means the same structure,
//! names and order included. Extra exports and unused imports do not matter.
//!
//! Names are matched without package versions (`witplug:plugin/config` in 0.1.0 and 0.2.0
//! is the same interface), as wit-component's semver check does. Named types are compared
//! once, where they are defined, so a changed record is reported as its changed field and
//! not again in every function that uses it.

use std::fmt;

use wit_parser::{
    Function, Handle, Interface, InterfaceId, Resolve, Type, TypeDef, TypeDefKind, TypeOwner,
    WorldId, WorldItem, WorldKey,
};

use crate::Error;
use crate::source::WitSource;

/// Which plugins on which hosts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Plugins built against OLD, on a host of NEW: what a host upgrade must not break.
    OldPluginsOnNewHosts,
    /// Plugins built against NEW, on a host of OLD: what a plugin upgrade must not break.
    NewPluginsOnOldHosts,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::OldPluginsOnNewHosts => "plugins of OLD on hosts of NEW",
            Direction::NewPluginsOnOldHosts => "plugins of NEW on hosts of OLD",
        })
    }
}

/// One change that keeps a plugin from working on a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Break {
    /// Where: an interface, `interface.function`, or `interface.type`.
    pub item: String,
    /// What changed, from OLD to NEW, and why it matters.
    pub problem: String,
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.item, self.problem)
    }
}

/// What became of one world.
#[derive(Clone, Debug)]
pub enum WorldChange {
    /// In OLD only: its plugins have no host of NEW.
    Removed,
    /// In NEW only.
    Added,
    Compared {
        /// Why plugins of OLD do not fit hosts of NEW (empty: they do).
        old_plugins_on_new_hosts: Vec<Break>,
        /// Why plugins of NEW do not fit hosts of OLD (empty: they do).
        new_plugins_on_old_hosts: Vec<Break>,
        /// What wit-component's semver check (the component model's own type check) said
        /// of each direction, `[old plugins on new hosts, new plugins on old hosts]`, where
        /// it applies: both sides WIT packages of one name.
        type_check: Option<[bool; 2]>,
        /// The direction whose host would be a component: a component is a plugin, so
        /// that direction is not checked (its break list is empty).
        not_applicable: Option<Direction>,
    },
}

#[derive(Clone, Debug)]
pub struct WorldReport {
    pub world: String,
    pub change: WorldChange,
}

impl WorldReport {
    /// The changes that break `direction` (a removed world breaks old plugins).
    pub fn breaks(&self, direction: Direction) -> &[Break] {
        const NONE: &[Break] = &[];
        match (&self.change, direction) {
            (
                WorldChange::Compared {
                    old_plugins_on_new_hosts,
                    ..
                },
                Direction::OldPluginsOnNewHosts,
            ) => old_plugins_on_new_hosts,
            (
                WorldChange::Compared {
                    new_plugins_on_old_hosts,
                    ..
                },
                Direction::NewPluginsOnOldHosts,
            ) => new_plugins_on_old_hosts,
            _ => NONE,
        }
    }

    /// Whether `direction` holds for this world.
    pub fn holds(&self, direction: Direction) -> bool {
        match self.change {
            WorldChange::Removed => direction != Direction::OldPluginsOnNewHosts,
            WorldChange::Added => true,
            WorldChange::Compared { .. } => self.breaks(direction).is_empty(),
        }
    }
}

/// The comparison of two versions, world by world.
#[derive(Clone, Debug)]
pub struct Report {
    /// What OLD and NEW are, e.g. `witplug:plugin@0.1.0 (wit)`.
    pub old: String,
    pub new: String,
    pub worlds: Vec<WorldReport>,
}

impl Report {
    /// Whether `direction` holds for every world.
    pub fn holds(&self, direction: Direction) -> bool {
        self.worlds.iter().all(|world| world.holds(direction))
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "OLD: {}", self.old)?;
        writeln!(f, "NEW: {}", self.new)?;
        for world in &self.worlds {
            match &world.change {
                WorldChange::Removed => writeln!(
                    f,
                    "world {}: removed in NEW; its plugins have no host of NEW",
                    world.world
                )?,
                WorldChange::Added => writeln!(f, "world {}: added in NEW", world.world)?,
                WorldChange::Compared {
                    type_check,
                    not_applicable,
                    ..
                } => {
                    let named = [
                        world.breaks(Direction::OldPluginsOnNewHosts).is_empty(),
                        world.breaks(Direction::NewPluginsOnOldHosts).is_empty(),
                    ];
                    let checked = match type_check {
                        Some(verdict) if *verdict == named => {
                            " (the component model's type check agrees)".to_owned()
                        }
                        // The named changes are stricter than the type check: say both.
                        Some([old_fit, new_fit]) => format!(
                            " (the component model's type check would accept: old plugins on \
                             new hosts {}, new plugins on old hosts {})",
                            if *old_fit { "yes" } else { "no" },
                            if *new_fit { "yes" } else { "no" }
                        ),
                        None => String::new(),
                    };
                    writeln!(f, "world {}:{checked}", world.world)?;
                    for direction in [
                        Direction::OldPluginsOnNewHosts,
                        Direction::NewPluginsOnOldHosts,
                    ] {
                        let breaks = world.breaks(direction);
                        if *not_applicable == Some(direction) {
                            writeln!(
                                f,
                                "  {direction}: not checked (a component is a plugin, not a host)"
                            )?;
                        } else if breaks.is_empty() {
                            writeln!(f, "  {direction}: fit")?;
                        } else {
                            writeln!(f, "  {direction}: BREAK")?;
                            for change in breaks {
                                writeln!(f, "    - {change}")?;
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Compares every world of `old` with the world of the same name in `new`, or only the
/// world named `world`. A component has one world, compared with the other side's world
/// named `world` (or its only world).
pub fn check(old: &WitSource, new: &WitSource, world: Option<&str>) -> Result<Report, Error> {
    let mut worlds = Vec::new();
    for (name, old_world, new_world) in pair_worlds(old, new, world)? {
        let change = match (old_world, new_world) {
            (Some(_), None) => WorldChange::Removed,
            (None, Some(_)) => WorldChange::Added,
            (Some(o), Some(n)) => compare_world(old, o, new, n),
            (None, None) => continue,
        };
        worlds.push(WorldReport {
            world: name,
            change,
        });
    }
    Ok(Report {
        old: describe(old),
        new: describe(new),
        worlds,
    })
}

fn describe(source: &WitSource) -> String {
    format!("{} ({})", source.name(), source.path().display())
}

type WorldPair = (String, Option<WorldId>, Option<WorldId>);

fn pair_worlds(
    old: &WitSource,
    new: &WitSource,
    only: Option<&str>,
) -> Result<Vec<WorldPair>, Error> {
    let (old_worlds, new_worlds) = (old.worlds(), new.worlds());
    let pick = |source: &WitSource, worlds: &[(String, WorldId)], other: &WitSource| match (
        only, worlds,
    ) {
        (Some(name), _) => worlds
            .iter()
            .find(|(n, _)| n == name)
            .map(|(n, w)| (n.clone(), *w))
            .ok_or_else(|| Error::NoSuchWorld {
                path: source.path.clone(),
                name: name.to_owned(),
                available: worlds.iter().map(|(n, _)| n.clone()).collect(),
            }),
        (None, [(n, w)]) => Ok((n.clone(), *w)),
        (None, _) => Err(Error::WhichWorld {
            component: other.path.clone(),
            package: source.path.clone(),
            available: worlds.iter().map(|(n, _)| n.clone()).collect(),
        }),
    };
    if old.is_component() && new.is_component() {
        return Err(Error::TwoComponents {
            old: old.path.clone(),
            new: new.path.clone(),
        });
    }
    // A component's world is whatever its package calls it: pair it with the one named.
    if old.is_component() || new.is_component() {
        let (name, o) = if old.is_component() {
            (None, old_worlds[0].1)
        } else {
            let (n, w) = pick(old, &old_worlds, new)?;
            (Some(n), w)
        };
        let (new_name, n) = if new.is_component() {
            (None, new_worlds[0].1)
        } else {
            let (n, w) = pick(new, &new_worlds, old)?;
            (Some(n), w)
        };
        let name = name.or(new_name).unwrap_or_else(|| "component".to_owned());
        return Ok(vec![(name, Some(o), Some(n))]);
    }
    let mut pairs = Vec::new();
    for (name, o) in &old_worlds {
        if only.is_some_and(|only| only != name) {
            continue;
        }
        let n = new_worlds.iter().find(|(n, _)| n == name).map(|(_, w)| *w);
        pairs.push((name.clone(), Some(*o), n));
    }
    for (name, n) in &new_worlds {
        if only.is_some_and(|only| only != name) {
            continue;
        }
        if !old_worlds.iter().any(|(o, _)| o == name) {
            pairs.push((name.clone(), None, Some(*n)));
        }
    }
    if let Some(name) = only
        && pairs.is_empty()
    {
        return Err(Error::NoSuchWorld {
            path: old.path.clone(),
            name: name.to_owned(),
            available: old_worlds.into_iter().map(|(n, _)| n).collect(),
        });
    }
    Ok(pairs)
}

fn compare_world(old: &WitSource, o: WorldId, new: &WitSource, n: WorldId) -> WorldChange {
    let sides = Sides {
        old: &old.resolve,
        new: &new.resolve,
        components: [old.is_component(), new.is_component()],
    };
    // A component is a plugin: it says what it uses, not what a host of it would offer.
    let not_applicable = if new.is_component() {
        Some(Direction::OldPluginsOnNewHosts)
    } else if old.is_component() {
        Some(Direction::NewPluginsOnOldHosts)
    } else {
        None
    };
    let fits = |direction| {
        if not_applicable == Some(direction) {
            Vec::new()
        } else {
            sides.fits(o, n, direction)
        }
    };
    let mut old_plugins_on_new_hosts = fits(Direction::OldPluginsOnNewHosts);
    let mut new_plugins_on_old_hosts = fits(Direction::NewPluginsOnOldHosts);
    // The component model's own verdict, where wit-component can give it: anything it
    // refuses that the comparison above did not name is reported in its words.
    let semver = semver::verdicts(old, o, new, n);
    let type_check = semver.as_ref().map(|semver| {
        [
            semver.old_plugins_on_new_hosts.is_none(),
            semver.new_plugins_on_old_hosts.is_none(),
        ]
    });
    if let Some(semver) = semver {
        for (breaks, refusal) in [
            (
                &mut old_plugins_on_new_hosts,
                semver.old_plugins_on_new_hosts,
            ),
            (
                &mut new_plugins_on_old_hosts,
                semver.new_plugins_on_old_hosts,
            ),
        ] {
            if let Some(message) = refusal
                && breaks.is_empty()
            {
                breaks.push(Break {
                    item: "world".to_owned(),
                    problem: format!("the component model's type check refuses it: {message}"),
                });
            }
        }
    }
    WorldChange::Compared {
        old_plugins_on_new_hosts,
        new_plugins_on_old_hosts,
        type_check,
        not_applicable,
    }
}

/// Which side a missing item is missing from, for its message.
#[derive(Clone, Copy)]
enum Role {
    /// The host calls the plugin's export.
    Export,
    /// The plugin calls the host's import.
    Import,
}

struct Sides<'a> {
    old: &'a Resolve,
    new: &'a Resolve,
    /// Whether OLD, NEW is a component rather than a WIT package.
    components: [bool; 2],
}

/// One item of a world on both sides.
struct Item<'a> {
    name: String,
    old: &'a WorldItem,
    new: &'a WorldItem,
}

impl<'a> Sides<'a> {
    /// Why plugins of one side do not fit hosts of the other.
    fn fits(&self, o: WorldId, n: WorldId, direction: Direction) -> Vec<Break> {
        let (old_world, new_world) = (&self.old.worlds[o], &self.new.worlds[n]);
        let mut breaks = Vec::new();
        for role in [Role::Export, Role::Import] {
            let (old_items, new_items) = match role {
                Role::Export => (&old_world.exports, &new_world.exports),
                Role::Import => (&old_world.imports, &new_world.imports),
            };
            // What must be there: the host's exports (it calls them), the plugin's imports
            // (it calls them).
            let required_is_new = matches!(
                (role, direction),
                (Role::Export, Direction::OldPluginsOnNewHosts)
                    | (Role::Import, Direction::NewPluginsOnOldHosts)
            );
            let (required, required_in, other, other_in) = if required_is_new {
                (new_items, self.new, old_items, self.old)
            } else {
                (old_items, self.old, new_items, self.new)
            };
            for (key, item) in required {
                let name = key_name(required_in, key);
                let counterpart = other
                    .iter()
                    .find(|(k, _)| key_name(other_in, k) == name)
                    .map(|(_, item)| item);
                let Some(counterpart) = counterpart else {
                    // A component imports the WASI interfaces it uses, which a world does
                    // not list: every witplug host offers WASI beside the world.
                    let plugin_is_component = self.components[usize::from(required_is_new)];
                    if matches!(role, Role::Import)
                        && plugin_is_component
                        && name.starts_with("wasi:")
                    {
                        continue;
                    }
                    breaks.push(Break {
                        item: name,
                        problem: missing(role, direction, "it"),
                    });
                    continue;
                };
                let (old, new) = if required_is_new {
                    (counterpart, item)
                } else {
                    (item, counterpart)
                };
                self.compare_item(
                    &Item { name, old, new },
                    role,
                    direction,
                    required_is_new,
                    &mut breaks,
                );
            }
        }
        breaks
    }

    fn compare_item(
        &self,
        item: &Item<'_>,
        role: Role,
        direction: Direction,
        required_is_new: bool,
        breaks: &mut Vec<Break>,
    ) {
        let mut push = |problem: String| {
            breaks.push(Break {
                item: item.name.clone(),
                problem,
            })
        };
        match (item.old, item.new) {
            (WorldItem::Interface { id: o, .. }, WorldItem::Interface { id: n, .. }) => self
                .compare_interface(
                    &item.name,
                    (&self.old.interfaces[*o], &self.new.interfaces[*n]),
                    role,
                    direction,
                    required_is_new,
                    breaks,
                ),
            (WorldItem::Function(o), WorldItem::Function(n)) => {
                for problem in self.compare_function(o, n) {
                    push(problem);
                }
            }
            (WorldItem::Type { id: o, .. }, WorldItem::Type { id: n, .. }) => {
                for problem in self.compare_typedef(&self.old.types[*o], &self.new.types[*n]) {
                    push(problem);
                }
            }
            (o, n) => push(format!("was {} in OLD, is {} in NEW", kind(o), kind(n))),
        }
    }

    fn compare_interface(
        &self,
        name: &str,
        (old, new): (&Interface, &Interface),
        role: Role,
        direction: Direction,
        required_is_new: bool,
        breaks: &mut Vec<Break>,
    ) {
        let (required, other) = if required_is_new {
            (new, old)
        } else {
            (old, new)
        };
        // Types first: a changed type is named once, here, not in every function using it.
        for (type_name, &id) in &required.types {
            let Some(&counterpart) = other.types.get(type_name) else {
                breaks.push(Break {
                    item: format!("{name}.{type_name}"),
                    problem: missing(role, direction, "this type"),
                });
                continue;
            };
            let (o, n) = if required_is_new {
                (counterpart, id)
            } else {
                (id, counterpart)
            };
            for problem in self.compare_typedef(&self.old.types[o], &self.new.types[n]) {
                breaks.push(Break {
                    item: format!("{name}.{type_name}"),
                    problem,
                });
            }
        }
        for (function_name, function) in &required.functions {
            let Some(counterpart) = other.functions.get(function_name) else {
                breaks.push(Break {
                    item: format!("{name}.{function_name}"),
                    problem: missing(role, direction, "this function"),
                });
                continue;
            };
            let (o, n) = if required_is_new {
                (counterpart, function)
            } else {
                (function, counterpart)
            };
            for problem in self.compare_function(o, n) {
                breaks.push(Break {
                    item: format!("{name}.{function_name}"),
                    problem,
                });
            }
        }
    }

    /// How a function's signature changed, from OLD to NEW.
    fn compare_function(&self, old: &Function, new: &Function) -> Vec<String> {
        let mut problems = Vec::new();
        if old.params.len() != new.params.len() {
            problems.push(format!(
                "takes {} in OLD, {} in NEW",
                plural(old.params.len(), "parameter"),
                plural(new.params.len(), "parameter")
            ));
        }
        for (i, (o, n)) in old.params.iter().zip(&new.params).enumerate() {
            if o.name != n.name {
                problems.push(format!(
                    "parameter {} renamed from `{}` to `{}`",
                    i + 1,
                    o.name,
                    n.name
                ));
            }
            if !self.same_type(o.ty, n.ty) {
                problems.push(format!(
                    "parameter `{}` changed type from `{}` to `{}`",
                    o.name,
                    show(self.old, o.ty),
                    show(self.new, n.ty)
                ));
            }
        }
        match (old.result, new.result) {
            (None, None) => {}
            (Some(o), Some(n)) if self.same_type(o, n) => {}
            (o, n) => problems.push(format!(
                "result changed from `{}` to `{}`",
                o.map_or_else(|| "nothing".to_owned(), |t| show(self.old, t)),
                n.map_or_else(|| "nothing".to_owned(), |t| show(self.new, t)),
            )),
        }
        problems
    }

    /// How a named type's definition changed, from OLD to NEW.
    fn compare_typedef(&self, old: &TypeDef, new: &TypeDef) -> Vec<String> {
        use TypeDefKind as K;
        match (&old.kind, &new.kind) {
            (K::Record(o), K::Record(n)) => self.compare_cases(
                "field",
                &members(&o.fields, |f| (&f.name, Some(f.ty))),
                &members(&n.fields, |f| (&f.name, Some(f.ty))),
            ),
            (K::Variant(o), K::Variant(n)) => self.compare_cases(
                "case",
                &members(&o.cases, |c| (&c.name, c.ty)),
                &members(&n.cases, |c| (&c.name, c.ty)),
            ),
            (K::Enum(o), K::Enum(n)) => self.compare_cases(
                "case",
                &members(&o.cases, |c| (&c.name, None)),
                &members(&n.cases, |c| (&c.name, None)),
            ),
            (K::Flags(o), K::Flags(n)) => self.compare_cases(
                "flag",
                &members(&o.flags, |f| (&f.name, None)),
                &members(&n.flags, |f| (&f.name, None)),
            ),
            (K::Resource, K::Resource) => Vec::new(),
            (o, n) if o.as_str() != n.as_str() => {
                vec![format!(
                    "was a {} in OLD, is a {} in NEW",
                    o.as_str(),
                    n.as_str()
                )]
            }
            // Aliases and named anonymous types (`type batch = list<record>`).
            _ if self.same_kind(&old.kind, &new.kind) => Vec::new(),
            _ => vec![format!(
                "changed from `{}` to `{}`",
                show_kind(self.old, &old.kind),
                show_kind(self.new, &new.kind)
            )],
        }
    }

    /// The changes between two lists of named members (fields, cases, flags), in order:
    /// removed, added, retyped, then moved (the canonical ABI numbers them by position).
    fn compare_cases(
        &self,
        what: &str,
        old: &[(&str, Option<Type>)],
        new: &[(&str, Option<Type>)],
    ) -> Vec<String> {
        let mut problems = Vec::new();
        let find =
            |list: &[(&str, Option<Type>)], name: &str| list.iter().position(|(n, _)| *n == name);
        for (name, _) in old {
            if find(new, name).is_none() {
                problems.push(format!("{what} `{name}` removed"));
            }
        }
        for (name, _) in new {
            if find(old, name).is_none() {
                problems.push(format!("{what} `{name}` added"));
            }
        }
        for (name, o) in old {
            let Some(at) = find(new, name) else { continue };
            let n = new[at].1;
            let same = match (o, n) {
                (None, None) => true,
                (Some(o), Some(n)) => self.same_type(*o, n),
                _ => false,
            };
            if !same {
                let show_payload = |resolve, ty: Option<Type>| {
                    ty.map_or_else(
                        || "no payload".to_owned(),
                        |t| format!("`{}`", show(resolve, t)),
                    )
                };
                problems.push(format!(
                    "{what} `{name}` changed from {} to {}",
                    show_payload(self.old, *o),
                    show_payload(self.new, n)
                ));
            }
        }
        let common_old: Vec<&str> = old
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| find(new, n).is_some())
            .collect();
        let common_new: Vec<&str> = new
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| find(old, n).is_some())
            .collect();
        if common_old != common_new {
            problems.push(format!(
                "{what}s reordered (from {} to {})",
                common_old.join(", "),
                common_new.join(", ")
            ));
        }
        problems
    }

    /// Whether two uses of a type are the same: a named type by name and owner (its
    /// definition is compared where it is defined), anything else by structure.
    fn same_type(&self, old: Type, new: Type) -> bool {
        match (old, new) {
            (Type::Id(o), Type::Id(n)) => {
                let (o, n) = (&self.old.types[o], &self.new.types[n]);
                match (&o.name, &n.name) {
                    (Some(a), Some(b)) => {
                        a == b && owner_name(self.old, o.owner) == owner_name(self.new, n.owner)
                    }
                    (None, None) => self.same_kind(&o.kind, &n.kind),
                    _ => false,
                }
            }
            (Type::Id(_), _) | (_, Type::Id(_)) => false,
            (o, n) => o == n,
        }
    }

    fn same_kind(&self, old: &TypeDefKind, new: &TypeDefKind) -> bool {
        use TypeDefKind as K;
        let same = |o: Type, n: Type| self.same_type(o, n);
        let same_opt = |o: Option<Type>, n: Option<Type>| match (o, n) {
            (None, None) => true,
            (Some(o), Some(n)) => self.same_type(o, n),
            _ => false,
        };
        match (old, new) {
            (K::Type(o), K::Type(n)) | (K::List(o), K::List(n)) | (K::Option(o), K::Option(n)) => {
                same(*o, *n)
            }
            (K::FixedLengthList(o, a), K::FixedLengthList(n, b)) => a == b && same(*o, *n),
            (K::Map(ok, ov), K::Map(nk, nv)) => same(*ok, *nk) && same(*ov, *nv),
            (K::Result(o), K::Result(n)) => same_opt(o.ok, n.ok) && same_opt(o.err, n.err),
            (K::Tuple(o), K::Tuple(n)) => {
                o.types.len() == n.types.len()
                    && o.types.iter().zip(&n.types).all(|(o, n)| same(*o, *n))
            }
            (K::Handle(Handle::Own(o)), K::Handle(Handle::Own(n)))
            | (K::Handle(Handle::Borrow(o)), K::Handle(Handle::Borrow(n))) => {
                same(Type::Id(*o), Type::Id(*n))
            }
            (K::Future(o), K::Future(n)) | (K::Stream(o), K::Stream(n)) => same_opt(*o, *n),
            // Named kinds only reach here through an anonymous use, which WIT has none of.
            _ => false,
        }
    }
}

/// A record's fields, a variant's cases, ...: each member's name and payload type.
fn members<'t, T>(
    list: &'t [T],
    member: impl Fn(&'t T) -> (&'t String, Option<Type>),
) -> Vec<(&'t str, Option<Type>)> {
    list.iter()
        .map(|item| {
            let (name, ty) = member(item);
            (name.as_str(), ty)
        })
        .collect()
}

/// Why a required item's absence breaks `direction`.
fn missing(role: Role, direction: Direction, what: &str) -> String {
    match (role, direction) {
        (Role::Export, Direction::OldPluginsOnNewHosts) => {
            format!(
                "added to NEW's exports: hosts of NEW use {what}, plugins of OLD do not export it"
            )
        }
        (Role::Export, Direction::NewPluginsOnOldHosts) => {
            format!(
                "removed from NEW's exports: hosts of OLD use {what}, plugins of NEW do not export it"
            )
        }
        (Role::Import, Direction::OldPluginsOnNewHosts) => {
            format!(
                "removed from NEW's imports: plugins of OLD may use {what}, hosts of NEW do not offer it"
            )
        }
        (Role::Import, Direction::NewPluginsOnOldHosts) => {
            format!(
                "added to NEW's imports: plugins of NEW may use {what}, hosts of OLD do not offer it"
            )
        }
    }
}

fn kind(item: &WorldItem) -> &'static str {
    match item {
        WorldItem::Interface { .. } => "an interface",
        WorldItem::Function(_) => "a function",
        WorldItem::Type { .. } => "a type",
    }
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// A world item's name without its package version: `witplug:plugin/config`, or the
/// plain name of an inline interface or function.
fn key_name(resolve: &Resolve, key: &WorldKey) -> String {
    match key {
        WorldKey::Name(name) => name.clone(),
        WorldKey::Interface(id) => interface_name(resolve, *id),
    }
}

fn interface_name(resolve: &Resolve, id: InterfaceId) -> String {
    let interface = &resolve.interfaces[id];
    let name = interface.name.as_deref().unwrap_or("<anonymous>");
    match interface.package {
        Some(package) => {
            let package = &resolve.packages[package].name;
            format!("{}:{}/{name}", package.namespace, package.name)
        }
        None => name.to_owned(),
    }
}

fn owner_name(resolve: &Resolve, owner: TypeOwner) -> String {
    match owner {
        TypeOwner::Interface(id) => interface_name(resolve, id),
        TypeOwner::World(id) => resolve.worlds[id].name.clone(),
        TypeOwner::None => String::new(),
    }
}

/// A type as WIT spells it, e.g. `list<record>`.
fn show(resolve: &Resolve, ty: Type) -> String {
    match ty {
        Type::Bool => "bool".to_owned(),
        Type::U8 => "u8".to_owned(),
        Type::U16 => "u16".to_owned(),
        Type::U32 => "u32".to_owned(),
        Type::U64 => "u64".to_owned(),
        Type::S8 => "s8".to_owned(),
        Type::S16 => "s16".to_owned(),
        Type::S32 => "s32".to_owned(),
        Type::S64 => "s64".to_owned(),
        Type::F32 => "f32".to_owned(),
        Type::F64 => "f64".to_owned(),
        Type::Char => "char".to_owned(),
        Type::String => "string".to_owned(),
        Type::ErrorContext => "error-context".to_owned(),
        Type::Id(id) => {
            let def = &resolve.types[id];
            match &def.name {
                Some(name) => name.clone(),
                None => show_kind(resolve, &def.kind),
            }
        }
    }
}

fn show_kind(resolve: &Resolve, kind: &TypeDefKind) -> String {
    use TypeDefKind as K;
    let opt = |ty: Option<Type>| ty.map_or_else(|| "_".to_owned(), |t| show(resolve, t));
    match kind {
        K::Type(t) => show(resolve, *t),
        K::List(t) => format!("list<{}>", show(resolve, *t)),
        K::FixedLengthList(t, n) => format!("list<{}, {n}>", show(resolve, *t)),
        K::Map(k, v) => format!("map<{}, {}>", show(resolve, *k), show(resolve, *v)),
        K::Option(t) => format!("option<{}>", show(resolve, *t)),
        K::Result(r) => format!("result<{}, {}>", opt(r.ok), opt(r.err)),
        K::Tuple(t) => format!(
            "tuple<{}>",
            t.types
                .iter()
                .map(|t| show(resolve, *t))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        K::Handle(Handle::Own(id)) => show(resolve, Type::Id(*id)),
        K::Handle(Handle::Borrow(id)) => format!("borrow<{}>", show(resolve, Type::Id(*id))),
        K::Future(t) => format!("future<{}>", opt(*t)),
        K::Stream(t) => format!("stream<{}>", opt(*t)),
        other => other.as_str().to_owned(),
    }
}

/// wit-component's semver check, where it applies: both sides WIT packages of one name.
mod semver {
    use wit_parser::{Resolve, WorldId};

    use crate::source::{Main, WitSource};

    pub(super) struct Verdicts {
        /// `Some(why)` when the check refuses plugins of OLD on hosts of NEW.
        pub old_plugins_on_new_hosts: Option<String>,
        pub new_plugins_on_old_hosts: Option<String>,
    }

    pub(super) fn verdicts(
        old: &WitSource,
        o: WorldId,
        new: &WitSource,
        n: WorldId,
    ) -> Option<Verdicts> {
        let (Main::Package(old_package), Main::Package(new_package)) = (old.main, new.main) else {
            return None;
        };
        let mut combined = old.resolve.clone();
        let mut renamed = new.resolve.clone();
        let mut name = renamed.packages[new_package].name.clone();
        let old_name = &combined.packages[old_package].name;
        if (&old_name.namespace, &old_name.name) != (&name.namespace, &name.name) {
            return None;
        }
        // One resolve cannot hold two packages of one name and version: NEW's gets a
        // version of its own (the check ignores versions anyway).
        if combined.package_names.contains_key(&name) {
            renamed.package_names.shift_remove(&name);
            let mut version = name
                .version
                .clone()
                .unwrap_or(::semver::Version::new(0, 0, 0));
            version.pre = ::semver::Prerelease::new("witplug-new").ok()?;
            name.version = Some(version);
            renamed.packages[new_package].name = name.clone();
            renamed.package_names.insert(name, new_package);
        }
        let remap = combined.merge(renamed).ok()?;
        let n = remap.worlds.get(n.index()).copied().flatten()?;
        let check = |resolve: &Resolve, prev: WorldId, next: WorldId| {
            wit_component::semver_check(resolve.clone(), prev, next)
                .err()
                .map(|error| format!("{error:#}"))
        };
        Some(Verdicts {
            old_plugins_on_new_hosts: check(&combined, o, n),
            new_plugins_on_old_hosts: check(&combined, n, o),
        })
    }
}
