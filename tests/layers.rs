//! The module layering of `src/`, checked against the table in
//! `docs/architecture.md`: every module is in the table, no module imports
//! one of a higher layer, and the imports of non-test code have no cycle.
//! Imports are read from the source text: `crate::NAME` (and
//! `groupcached::NAME` in `main.rs`, which names what `lib.rs` re-exports),
//! outside comments and test modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module name → layer, from the table's rows `| N | `a`, `b` | ... |`.
fn layer_table() -> BTreeMap<String, u32> {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/architecture.md");
    let text = std::fs::read_to_string(&doc).expect("docs/architecture.md");
    let mut layers = BTreeMap::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (Some(layer), Some(modules)) = (cells.get(1), cells.get(2)) else {
            continue;
        };
        let Ok(layer) = layer.parse::<u32>() else {
            continue;
        };
        for name in modules.split('`').skip(1).step_by(2) {
            let previous = layers.insert(name.to_string(), layer);
            assert!(previous.is_none(), "{name} is in the table twice");
        }
    }
    assert!(layers.len() > 10, "no layer table in {}", doc.display());
    layers
}

/// The names `lib.rs` re-exports (`pub use module::{A, b as c};`), each
/// with the module it comes from.
fn reexports(lib: &str) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for statement in lib.split(';') {
        let Some((_, path)) = statement.split_once("pub use ") else {
            continue;
        };
        let Some((module, items)) = path.split_once("::") else {
            continue;
        };
        let words = items.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
        for word in words.filter(|w| !w.is_empty() && *w != "as") {
            names.insert(word.to_string(), module.trim().to_string());
        }
    }
    names
}

/// Every module of `src/` (by file stem, `mod.rs` by directory) and the
/// modules its non-test code names.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let reexports = reexports(&std::fs::read_to_string(src.join("lib.rs")).expect("src/lib.rs"));
    let mut graph = BTreeMap::new();
    let mut files = vec![src.clone()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).expect("src/") {
                files.push(entry.expect("a directory entry").path());
            }
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let name = if stem == "mod" {
            let parent = path.parent().and_then(Path::file_name);
            parent.and_then(|p| p.to_str()).unwrap_or_default()
        } else {
            stem
        };
        if name == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("a source file");
        // Test modules come last in every file; comments (doc links
        // included) import nothing.
        let tests_start = ["#[cfg(test)]", "#[cfg(all(test"]
            .iter()
            .filter_map(|mark| text.find(mark))
            .min()
            .unwrap_or(text.len());
        let code: String = text[..tests_start]
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let code = code.as_str();
        let prefix = if name == "main" {
            "groupcached::"
        } else {
            "crate::"
        };
        let mut used = BTreeSet::new();
        for (at, _) in code.match_indices(prefix) {
            let rest = &code[at + prefix.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let used_name = &rest[..end];
            // `main` names what `lib.rs` re-exports: the module it is from.
            let used_name = match reexports.get(used_name) {
                Some(module) if name == "main" => module.as_str(),
                _ => used_name,
            };
            if end > 0 && used_name != name {
                used.insert(used_name.to_string());
            }
        }
        // `use crate::{a, b::C}`: every name at the top of the braces.
        for (at, _) in code.match_indices(&format!("{prefix}{{")) {
            let rest = &code[at + prefix.len() + 1..];
            let inner = &rest[..rest.find("};").unwrap_or(rest.len())];
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in inner.char_indices().chain([(inner.len(), ',')]) {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        let item = inner[start..i].trim();
                        let head = item.split("::").next().unwrap_or_default().trim();
                        if !head.is_empty() && head != name {
                            used.insert(head.to_string());
                        }
                        start = i + 1;
                    }
                    _ => {}
                }
            }
        }
        graph.insert(name.to_string(), used);
    }
    graph
}

#[test]
fn every_module_imports_only_its_layer_and_below() {
    let layers = layer_table();
    let graph = imports();
    let mut wrong = Vec::new();
    for (module, used) in &graph {
        let Some(&layer) = layers.get(module) else {
            wrong.push(format!("{module} is not in the layer table"));
            continue;
        };
        for other in used {
            match layers.get(other) {
                None => wrong.push(format!("{module} imports {other}, not in the table")),
                Some(&theirs) if theirs > layer => wrong.push(format!(
                    "{module} (layer {layer}) imports {other} (layer {theirs})"
                )),
                Some(_) => {}
            }
        }
    }
    for module in layers.keys() {
        if !graph.contains_key(module) {
            wrong.push(format!("{module} is in the table but not in src/"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn module_imports_have_no_cycle() {
    let graph = imports();
    // Depth-first search; a module met again while on the path is a cycle.
    fn visit<'a>(
        module: &'a str,
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if done.contains(module) {
            return;
        }
        if let Some(at) = path.iter().position(|m| *m == module) {
            panic!("import cycle: {} -> {module}", path[at..].join(" -> "));
        }
        path.push(module);
        for next in graph.get(module).into_iter().flatten() {
            visit(next, graph, path, done);
        }
        path.pop();
        done.insert(module);
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        visit(module, &graph, &mut Vec::new(), &mut done);
    }
}
