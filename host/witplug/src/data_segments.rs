//! Removes the empty passive data segments that a wizer snapshot leaves behind.
//!
//! Wizer turns every active data segment of a snapshotted module into an *empty passive*
//! segment (so that the indices of the remaining segments do not move), then appends the
//! snapshot's own segments. Wasmtime folds active segments into one copy-on-write image,
//! but keeps a per-instance entry for every passive segment, filled in on each
//! instantiation. Mainline Go's linker emits many small data segments: a pre-initialised Go
//! component carried about 28,000 empty passive segments, and filling in their entries
//! was most of its instantiation time (measured in `cargo xtask bench`).
//!
//! A data index is only used by `memory.init` and `data.drop`. In a module whose code uses
//! neither, no segment can be told apart by index, so the empty passive segments (which
//! hold nothing and are never applied) can be removed and the data count lowered. Any
//! other module, and every section but the data and data-count sections, is copied byte
//! for byte.

use std::ops::Range;

use wasm_encoder::reencode::{Reencode, RoundtripReencoder};
use wasm_encoder::{ComponentSectionId, DataCountSection, DataSection, RawSection, SectionId};
use wasmparser::{DataKind, Operator, Parser, Payload, Validator, WasmFeatures};

/// Why a component's data segments were left as they are.
#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    #[error("the component could not be parsed")]
    Parse(#[from] wasmparser::BinaryReaderError),

    #[error("a data segment could not be re-encoded")]
    Reencode(#[from] wasm_encoder::reencode::Error),

    /// A bug here, never a property of the input: the rewritten component is validated
    /// before it is returned.
    #[error("the rewritten component does not validate")]
    Invalid(#[source] wasmparser::BinaryReaderError),
}

/// What [`compact`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactStats {
    /// Data segments in the component's core modules before.
    pub segments_before: usize,
    /// And after.
    pub segments_after: usize,
}

/// Rewrites the top-level core modules of `component` without their empty passive data
/// segments, where their code allows (see the [module documentation](self)). Nested
/// components are copied unchanged.
pub fn compact(component: &[u8]) -> Result<(Vec<u8>, CompactStats), CompactError> {
    let mut stats = CompactStats::default();
    let mut out = wasm_encoder::Component::new();
    // Payloads of nested modules and components come in between their section and their
    // `End`; only the top level is copied section by section.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(component) {
        let payload = payload?;
        let nested = depth > 0;
        match payload {
            // The top-level header is `Component::new`'s; nested ones are part of the
            // bytes of their section.
            Payload::Version { .. } => {}
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ModuleSection {
                unchecked_range, ..
            } => {
                depth += 1;
                if !nested {
                    let module = &component[unchecked_range];
                    let (rewritten, before, after) = compact_module(module)?;
                    stats.segments_before += before;
                    stats.segments_after += after;
                    out.section(&RawSection {
                        id: ComponentSectionId::CoreModule as u8,
                        data: rewritten.as_deref().unwrap_or(module),
                    });
                }
            }
            Payload::ComponentSection {
                unchecked_range, ..
            } => {
                depth += 1;
                if !nested {
                    out.section(&RawSection {
                        id: ComponentSectionId::Component as u8,
                        data: &component[unchecked_range],
                    });
                }
            }
            other if !nested => {
                if let Some((id, range)) = other.as_section() {
                    out.section(&RawSection {
                        id,
                        data: &component[range],
                    });
                }
            }
            _ => {}
        }
    }
    let bytes = out.finish();
    Validator::new_with_features(WasmFeatures::all())
        .validate_all(&bytes)
        .map_err(CompactError::Invalid)?;
    Ok((bytes, stats))
}

/// The module without its empty passive data segments, or `None` when it keeps them all;
/// with the segment counts before and after.
fn compact_module(module: &[u8]) -> Result<(Option<Vec<u8>>, usize, usize), CompactError> {
    let mut sections: Vec<(u8, Range<usize>)> = Vec::new();
    let mut data_section = None;
    let mut bodies = Vec::new();
    for payload in Parser::new(0).parse_all(module) {
        let payload = payload?;
        match &payload {
            Payload::DataSection(reader) => data_section = Some(reader.clone()),
            Payload::CodeSectionEntry(body) => bodies.push(body.clone()),
            _ => {}
        }
        if let Some((id, range)) = payload.as_section() {
            sections.push((id, range));
        }
    }
    let Some(data_section) = data_section else {
        return Ok((None, 0, 0));
    };
    let mut kept = DataSection::new();
    let mut before = 0;
    for datum in data_section {
        let datum = datum?;
        before += 1;
        if matches!(datum.kind, DataKind::Passive) && datum.data.is_empty() {
            continue;
        }
        RoundtripReencoder.parse_data(&mut kept, datum)?;
    }
    let after = kept.len() as usize;
    // The code is only read when there is something to remove.
    if after == before || uses_data_indices(&bodies)? {
        return Ok((None, before, before));
    }

    let mut out = wasm_encoder::Module::new();
    for (id, range) in sections {
        if id == SectionId::Data as u8 {
            out.section(&kept);
        } else if id == SectionId::DataCount as u8 {
            out.section(&DataCountSection { count: kept.len() });
        } else {
            out.section(&RawSection {
                id,
                data: &module[range],
            });
        }
    }
    Ok((Some(out.finish()), before, after))
}

/// Whether any function uses a data index (`memory.init`, `data.drop`).
fn uses_data_indices(bodies: &[wasmparser::FunctionBody<'_>]) -> Result<bool, CompactError> {
    for body in bodies {
        let mut operators = body.get_operators_reader()?;
        while !operators.eof() {
            if matches!(
                operators.read()?,
                Operator::MemoryInit { .. } | Operator::DataDrop { .. }
            ) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A component whose only section is the core module `module_wat`.
    fn component_of(module_wat: &str) -> Vec<u8> {
        let module = wat::parse_str(module_wat).expect("valid wat");
        let mut component = wasm_encoder::Component::new();
        component.section(&RawSection {
            id: ComponentSectionId::CoreModule as u8,
            data: &module,
        });
        component.finish()
    }

    fn data_segments(component: &[u8]) -> Vec<(bool, Vec<u8>)> {
        let mut segments = Vec::new();
        for payload in Parser::new(0).parse_all(component) {
            if let Payload::DataSection(reader) = payload.expect("parses") {
                for datum in reader {
                    let datum = datum.expect("datum");
                    let active = matches!(datum.kind, DataKind::Active { .. });
                    segments.push((active, datum.data.to_vec()));
                }
            }
        }
        segments
    }

    const SNAPSHOT_LIKE: &str = r#"(module
        (memory 1)
        (data "")
        (data "")
        (data (i32.const 16) "snap")
        (data "kept")
        (data (i32.const 64) "shot")
        (func (export "f") (result i32) (i32.load (i32.const 16))))"#;

    #[test]
    fn empty_passive_segments_are_removed() {
        let (bytes, stats) = compact(&component_of(SNAPSHOT_LIKE)).expect("compacts");
        assert_eq!(
            stats,
            CompactStats {
                segments_before: 5,
                segments_after: 3
            }
        );
        assert_eq!(
            data_segments(&bytes),
            vec![
                (true, b"snap".to_vec()),
                (false, b"kept".to_vec()),
                (true, b"shot".to_vec()),
            ]
        );
    }

    #[test]
    fn a_module_using_data_indices_is_left_alone() {
        let wat = SNAPSHOT_LIKE.replace("(func (export", "(func (data.drop 3)) (func (export");
        let original = component_of(&wat);
        let (bytes, stats) = compact(&original).expect("compacts");
        assert_eq!(stats.segments_before, stats.segments_after);
        assert_eq!(data_segments(&bytes), data_segments(&original));
    }

    #[test]
    fn the_offsets_of_active_segments_survive() {
        let wat = r#"(module (memory 1) (global i32 (i32.const 8))
            (data "") (data (global.get 0) "g") (data (i32.const 65535) "e"))"#;
        let (bytes, _) = compact(&component_of(wat)).expect("compacts");
        let module = Parser::new(0)
            .parse_all(&bytes)
            .filter_map(|p| match p.expect("parses") {
                Payload::DataSection(reader) => Some(reader),
                _ => None,
            })
            .next()
            .expect("a data section");
        let offsets: Vec<Vec<Operator<'_>>> = module
            .into_iter()
            .map(|d| match d.expect("datum").kind {
                DataKind::Active { offset_expr, .. } => offset_expr
                    .get_operators_reader()
                    .into_iter()
                    .map(|op| op.expect("operator"))
                    .collect(),
                DataKind::Passive => Vec::new(),
            })
            .collect();
        assert!(matches!(
            offsets[0][0],
            Operator::GlobalGet { global_index: 0 }
        ));
        assert!(matches!(offsets[1][0], Operator::I32Const { value: 65535 }));
    }

    #[test]
    fn a_nested_component_is_copied_as_it_is() {
        let module = wat::parse_str(SNAPSHOT_LIKE).expect("valid wat");
        // Two modules in the nested component: after the first one's end, its second is
        // still nested.
        let mut inner = wasm_encoder::Component::new();
        for _ in 0..2 {
            inner.section(&RawSection {
                id: ComponentSectionId::CoreModule as u8,
                data: &module,
            });
        }
        let mut outer = wasm_encoder::Component::new();
        outer.section(&wasm_encoder::NestedComponentSection(&inner));
        outer.section(&RawSection {
            id: ComponentSectionId::CoreModule as u8,
            data: &module,
        });
        let original = outer.finish();
        let (bytes, stats) = compact(&original).expect("compacts");
        // Only the top-level module is rewritten: the nested ones keep their 5 segments.
        assert_eq!((stats.segments_before, stats.segments_after), (5, 3));
        assert_eq!(data_segments(&bytes).len(), 5 + 5 + 3);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(compact(b"\0asm\x0d\0\x01\0\x01\xff").is_err());
    }
}
