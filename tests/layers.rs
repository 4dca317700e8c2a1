//! The module layering of `src/`, checked against the layer table in
//! `docs/architecture.md`: every module is in the table and every table
//! entry is a module, no module imports one of a higher layer, and the
//! imports of non-test code have no cycle.
//!
//! Every file of `src/` is parsed whole with `syn`, so comments and string
//! literals import nothing and no production line is skipped. Items gated
//! by `cfg(test)` (or `cfg(all(test, ...))`) are dropped wherever they sit:
//! a `mod tests`, a helper function in the middle of an `impl`, a field, a
//! statement. What remains is searched for paths that leave the module:
//! `crate::a::b` (in `use` trees, expressions, types, patterns and macro
//! bodies), `self::` and `super::` resolved against the module's own path,
//! a child module's name (`lru::Lru` in `cache/mod.rs`), names `lib.rs`
//! re-exports (`crate::Node`), and `groupcached::NAME` in `main.rs`. A
//! path lands in the longest prefix that is a module: `crate::cache::lru::
//! Lru` imports `cache::lru`, `crate::cache::Caches` imports `cache`.
//! Modules are named by path (`src/cache/lru.rs` is `cache::lru`,
//! `src/cache/mod.rs` is `cache`); `lib.rs` is the crate root, which only
//! declares and re-exports, and is not in the table.
//!
//! `check` works on sources in memory, so the unit tests at the bottom feed
//! it small synthetic crates; `src_follows_the_layer_table` feeds it the
//! real tree.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::punctuated::Punctuated;
use syn::visit::{self, Visit};
use syn::{Attribute, Meta, Token, UseTree};

/// Imports from one module to another that break the table today and wait
/// for the move of `src/` into folders, which removes them; each is
/// `(importing module, imported module)`. An entry whose import is gone
/// fails the check, so the list only shrinks.
const WAITING_FOR_THE_MOVE: &[(&str, &str)] = &[];

#[test]
fn src_follows_the_layer_table() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let table = std::fs::read_to_string(root.join("docs/architecture.md"))
        .expect("docs/architecture.md is readable");
    let mut files = Vec::new();
    read_sources(root, Path::new("src"), &mut files);
    assert!(files.len() > 10, "no sources found under src/");
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(f, s)| (f.as_str(), s.as_str()))
        .collect();
    let problems = check_allowing(&table, &files, WAITING_FOR_THE_MOVE);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every `.rs` file under `root/dir`, as (path relative to `root`, text).
fn read_sources(root: &Path, dir: &Path, files: &mut Vec<(String, String)>) {
    let entries = std::fs::read_dir(root.join(dir)).expect("src/ is readable");
    for entry in entries {
        let relative = dir.join(entry.expect("a directory entry").file_name());
        let path = root.join(&relative);
        if path.is_dir() {
            read_sources(root, &relative, files);
        } else if relative.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("a source file is readable");
            let name = relative.to_str().expect("source paths are UTF-8");
            files.push((name.replace('\\', "/"), text));
        }
    }
}

/// The problems of a crate: `table` is the text of docs/architecture.md,
/// `files` are (`src/...` path, source text) for every source file.
fn check(table: &str, files: &[(&str, &str)]) -> Vec<String> {
    check_allowing(table, files, &[])
}

/// `check`, except that the `allowed` imports (importing module, imported
/// module) are left out of the layer and cycle checks.
fn check_allowing(table: &str, files: &[(&str, &str)], allowed: &[(&str, &str)]) -> Vec<String> {
    let (layers, mut problems) = layer_table(table);
    let (mut edges, modules) = match imports(files) {
        Ok(found) => found,
        Err(mut unreadable) => {
            problems.append(&mut unreadable);
            return problems;
        }
    };
    for (module, file) in &modules {
        if !layers.contains_key(module) {
            problems.push(format!(
                "{file}: module `{module}` is not in the layer table of docs/architecture.md"
            ));
        }
    }
    for module in layers.keys() {
        if !modules.contains_key(module) {
            problems.push(format!(
                "docs/architecture.md: `{module}` is in the layer table but no file in src/ is that module"
            ));
        }
    }
    for &(from, to) in allowed {
        if edges.remove(&(from.to_string(), to.to_string())).is_none() {
            problems.push(format!(
                "`{from}` no longer imports `{to}`: remove the pair from WAITING_FOR_THE_MOVE"
            ));
        }
    }
    for ((from, to), at) in &edges {
        if let (Some(&mine), Some(&theirs)) = (layers.get(from), layers.get(to)) {
            if theirs > mine {
                problems.push(format!(
                    "{at}: `{from}` (layer {mine}) imports `{to}` (layer {theirs}), a higher layer"
                ));
            }
        }
    }
    problems.append(&mut cycles(&edges));
    problems
}

/// Module path → layer, from the table's rows `| N | `a`, `b::c` | ... |`,
/// and the table's own problems.
fn layer_table(doc: &str) -> (BTreeMap<String, u32>, Vec<String>) {
    let mut layers = BTreeMap::new();
    let mut problems = Vec::new();
    for line in doc.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (Some(layer), Some(modules)) = (cells.get(1), cells.get(2)) else {
            continue;
        };
        let Ok(layer) = layer.parse::<u32>() else {
            continue;
        };
        for module in modules.split('`').skip(1).step_by(2) {
            if layers.insert(module.to_string(), layer).is_some() {
                problems.push(format!(
                    "docs/architecture.md: `{module}` is in the layer table twice"
                ));
            }
        }
    }
    if layers.is_empty() {
        problems.push("docs/architecture.md: no layer table (`| N | `module` | what |`)".into());
    }
    (layers, problems)
}

/// Where an import is written: file, line and the path as written.
#[derive(Clone, Debug)]
struct Place {
    file: String,
    line: usize,
    path: String,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: `{}`", self.file, self.line, self.path)
    }
}

/// (importing module, imported module) → where it is first written.
type Edges = BTreeMap<(String, String), Place>;

/// The module path of a source file: `src/cache/lru.rs` is `cache::lru`,
/// `src/cache/mod.rs` is `cache`, `src/main.rs` is `main`, and `src/lib.rs`
/// is the crate root, "".
fn module_path(file: &str) -> Option<String> {
    let inner = file.strip_prefix("src/")?.strip_suffix(".rs")?;
    let mut parts: Vec<&str> = inner.split('/').collect();
    if parts.len() > 1 && parts.last() == Some(&"mod") {
        parts.pop();
    }
    Some(if inner == "lib" {
        String::new()
    } else {
        parts.join("::")
    })
}

/// A parsed source file and the module it is.
struct Source<'a> {
    file: &'a str,
    module: String,
    ast: syn::File,
}

/// Every module (with its file) and the imports of its non-test code; or
/// why some file could not be read.
fn imports(files: &[(&str, &str)]) -> Result<(Edges, BTreeMap<String, String>), Vec<String>> {
    let sources = parse_sources(files)?;
    let modules: BTreeMap<String, String> = sources
        .iter()
        .filter(|source| !source.module.is_empty())
        .map(|source| (source.module.clone(), source.file.to_string()))
        .collect();
    let known: BTreeSet<String> = modules.keys().cloned().collect();
    let root = sources.iter().find(|source| source.module.is_empty());
    let reexports = root
        .map(|root| root_reexports(&root.ast, &known))
        .unwrap_or_default();
    let mut edges = Edges::new();
    for source in sources.iter().filter(|source| !source.module.is_empty()) {
        let in_binary = source.module == "main";
        let mut collector = Collector {
            known: &known,
            reexports: &reexports,
            file: source.file,
            module: &source.module,
            root: if in_binary { "groupcached" } else { "crate" },
            scope: if in_binary {
                None
            } else {
                Some(source.module.split("::").map(String::from).collect())
            },
            edges: &mut edges,
        };
        collector.visit_file(&source.ast);
    }
    Ok((edges, modules))
}

/// The files parsed, without those that are test code: a file that says so
/// (`#![cfg(test)]`) or whose parent declares it `#[cfg(test)] mod name;`.
fn parse_sources<'a>(files: &[(&'a str, &str)]) -> Result<Vec<Source<'a>>, Vec<String>> {
    let mut sources = Vec::new();
    let mut problems = Vec::new();
    for &(file, text) in files {
        let Some(module) = module_path(file) else {
            problems.push(format!("{file}: not a `src/**.rs` path"));
            continue;
        };
        match syn::parse_file(text) {
            Ok(ast) => sources.push(Source { file, module, ast }),
            Err(e) => problems.push(format!(
                "{file}:{}: does not parse: {e}",
                e.span().start().line
            )),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut test_modules = Vec::new();
    for source in &sources {
        if is_test_only(&source.ast.attrs) {
            test_modules.push(source.module.clone());
        }
        for item in &source.ast.items {
            if let syn::Item::Mod(m) = item {
                if m.content.is_none() && is_test_only(&m.attrs) {
                    test_modules.push(join(&source.module, &m.ident.to_string()));
                }
            }
        }
    }
    sources.retain(|source| {
        !test_modules
            .iter()
            .any(|t| source.module == *t || source.module.starts_with(&format!("{t}::")))
    });
    Ok(sources)
}

/// What `crate::NAME` stands for when NAME is not a module: the path the
/// root's `use` items bring it in by (`pub use server::run as serve` makes
/// `serve` stand for `server::run`).
fn root_reexports(root: &syn::File, known: &BTreeSet<String>) -> BTreeMap<String, Vec<String>> {
    let mut reexports = BTreeMap::new();
    for item in &root.items {
        let syn::Item::Use(u) = item else {
            continue;
        };
        if is_test_only(&u.attrs) {
            continue;
        }
        let mut leaves = Vec::new();
        use_leaves(&u.tree, &mut Vec::new(), &mut leaves);
        for leaf in leaves {
            let path: Vec<String> = leaf
                .segments
                .into_iter()
                .skip_while(|s| s == "crate" || s == "self")
                .collect();
            // Names from other crates (`use std::...`) are not ours.
            if path.first().is_some_and(|first| known.contains(first)) {
                reexports.insert(leaf.name, path);
            }
        }
    }
    reexports
}

/// `child` inside module `parent` ("" for the crate root).
fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}::{child}")
    }
}

/// Whether these attributes compile the node only under test: a `cfg`
/// whose predicate implies `test` (`test`, `all(test, ...)`).
fn is_test_only(attrs: &[Attribute]) -> bool {
    fn implies_test(meta: &Meta) -> bool {
        match meta {
            Meta::Path(path) => path.is_ident("test"),
            Meta::List(list) => {
                let Ok(nested) =
                    list.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
                else {
                    return false;
                };
                if list.path.is_ident("all") {
                    nested.iter().any(implies_test)
                } else if list.path.is_ident("any") {
                    !nested.is_empty() && nested.iter().all(implies_test)
                } else {
                    false
                }
            }
            Meta::NameValue(_) => false,
        }
    }
    attrs.iter().any(|attr| {
        attr.path().is_ident("cfg") && attr.parse_args::<Meta>().is_ok_and(|m| implies_test(&m))
    })
}

/// One name a `use` tree brings in: its full path, the name it is known
/// by, and where the name is written.
struct UseLeaf {
    segments: Vec<String>,
    name: String,
    span: Span,
}

/// The leaves of a `use` tree: `use crate::{a, b::{c, d as e}}` gives
/// `crate::a`, `crate::b::c` and `crate::b::d` (known as `e`).
fn use_leaves(tree: &UseTree, prefix: &mut Vec<String>, leaves: &mut Vec<UseLeaf>) {
    let mut leaf = |segments: Vec<String>, name: String, span| {
        leaves.push(UseLeaf {
            segments,
            name,
            span,
        })
    };
    match tree {
        UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            use_leaves(&p.tree, prefix, leaves);
            prefix.pop();
        }
        UseTree::Name(n) if n.ident == "self" => {
            let name = prefix.last().cloned().unwrap_or_default();
            leaf(prefix.clone(), name, n.ident.span());
        }
        UseTree::Name(n) => {
            let segments = prefix
                .iter()
                .cloned()
                .chain([n.ident.to_string()])
                .collect();
            leaf(segments, n.ident.to_string(), n.ident.span());
        }
        UseTree::Rename(r) => {
            let segments = prefix
                .iter()
                .cloned()
                .chain([r.ident.to_string()])
                .collect();
            leaf(segments, r.rename.to_string(), r.ident.span());
        }
        UseTree::Glob(g) => leaf(prefix.clone(), "*".into(), g.star_token.spans[0]),
        UseTree::Group(g) => {
            for tree in &g.items {
                use_leaves(tree, prefix, leaves);
            }
        }
    }
}

/// Walks one file's non-test code and records the modules its paths name.
struct Collector<'a> {
    known: &'a BTreeSet<String>,
    reexports: &'a BTreeMap<String, Vec<String>>,
    file: &'a str,
    module: &'a str,
    /// How the library's root is spelled: `crate`, or `groupcached` in the
    /// binary.
    root: &'static str,
    /// The module the code being walked is in (the file's module, then any
    /// inline `mod` inside it); `None` in the binary, whose `self` and
    /// `super` are not the library's.
    scope: Option<Vec<String>>,
    edges: &'a mut Edges,
}

impl Collector<'_> {
    /// Records the module a path lands in, if it is another of the crate.
    fn note(&mut self, segments: &[String], span: Span) {
        let Some(absolute) = self.absolute(segments) else {
            return;
        };
        // A root re-export stands for the path it re-exports.
        let absolute = match absolute.split_first() {
            Some((first, rest)) if !self.known.contains(first) => match self.reexports.get(first) {
                Some(path) => path.iter().chain(rest).cloned().collect(),
                None => absolute,
            },
            _ => absolute,
        };
        let target = (1..=absolute.len())
            .rev()
            .map(|n| absolute[..n].join("::"))
            .find(|prefix| self.known.contains(prefix));
        let Some(target) = target else {
            return;
        };
        if target == self.module {
            return;
        }
        let place = Place {
            file: self.file.to_string(),
            line: span.start().line,
            path: segments.join("::"),
        };
        self.edges
            .entry((self.module.to_string(), target))
            .or_insert(place);
    }

    /// A path as segments below the crate root, if it names the crate.
    fn absolute(&self, segments: &[String]) -> Option<Vec<String>> {
        let (first, rest) = segments.split_first()?;
        if *first == self.root {
            return Some(rest.to_vec());
        }
        let scope = self.scope.as_ref()?;
        match first.as_str() {
            "self" => Some(scope.iter().chain(rest).cloned().collect()),
            "super" => {
                let mut scope = scope.clone();
                let mut rest = segments;
                while rest.first().is_some_and(|s| s == "super") {
                    scope.pop()?;
                    rest = &rest[1..];
                }
                Some(scope.into_iter().chain(rest.iter().cloned()).collect())
            }
            // `lru::Lru` where `lru` is a child module: a path into it.
            child if !rest.is_empty() && self.known.contains(&join(&scope.join("::"), child)) => {
                Some(scope.iter().chain(segments).cloned().collect())
            }
            _ => None,
        }
    }

    /// The paths in a macro's tokens: every run `a::b::c` that does not
    /// start with `::`, in nested groups too.
    fn scan(&mut self, tokens: TokenStream) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        let is_colon =
            |at: usize| matches!(tokens.get(at), Some(TokenTree::Punct(p)) if p.as_char() == ':');
        let mut at = 0;
        while at < tokens.len() {
            match &tokens[at] {
                TokenTree::Group(group) => {
                    self.scan(group.stream());
                    at += 1;
                }
                TokenTree::Ident(first) if !(at >= 2 && is_colon(at - 1) && is_colon(at - 2)) => {
                    let mut segments = vec![first.to_string()];
                    at += 1;
                    while is_colon(at) && is_colon(at + 1) {
                        let Some(TokenTree::Ident(next)) = tokens.get(at + 2) else {
                            break;
                        };
                        segments.push(next.to_string());
                        at += 3;
                    }
                    if segments.len() > 1 {
                        self.note(&segments, first.span());
                    }
                }
                _ => at += 1,
            }
        }
    }
}

/// Visits the nodes of these types only when they are not test code: every
/// item, impl and trait item, field, variant, match arm, `let`, and the
/// expressions that stand as statements. A `cfg(test)` on a node not listed
/// is read as production code, which can only make the check stricter.
macro_rules! skip_test_code {
    ($($visit:ident: $node:ty,)*) => {$(
        fn $visit(&mut self, node: &'ast $node) {
            if !is_test_only(&node.attrs) {
                visit::$visit(self, node);
            }
        }
    )*};
}

impl<'ast> Visit<'ast> for Collector<'_> {
    skip_test_code! {
        visit_item_const: syn::ItemConst,
        visit_item_enum: syn::ItemEnum,
        visit_item_fn: syn::ItemFn,
        visit_item_foreign_mod: syn::ItemForeignMod,
        visit_item_impl: syn::ItemImpl,
        visit_item_macro: syn::ItemMacro,
        visit_item_static: syn::ItemStatic,
        visit_item_struct: syn::ItemStruct,
        visit_item_trait: syn::ItemTrait,
        visit_item_type: syn::ItemType,
        visit_item_union: syn::ItemUnion,
        visit_impl_item_const: syn::ImplItemConst,
        visit_impl_item_fn: syn::ImplItemFn,
        visit_impl_item_type: syn::ImplItemType,
        visit_impl_item_macro: syn::ImplItemMacro,
        visit_trait_item_const: syn::TraitItemConst,
        visit_trait_item_fn: syn::TraitItemFn,
        visit_trait_item_type: syn::TraitItemType,
        visit_trait_item_macro: syn::TraitItemMacro,
        visit_field: syn::Field,
        visit_variant: syn::Variant,
        visit_field_value: syn::FieldValue,
        visit_arm: syn::Arm,
        visit_local: syn::Local,
        visit_stmt_macro: syn::StmtMacro,
        visit_expr_block: syn::ExprBlock,
        visit_expr_call: syn::ExprCall,
        visit_expr_method_call: syn::ExprMethodCall,
        visit_expr_macro: syn::ExprMacro,
        visit_expr_assign: syn::ExprAssign,
        visit_expr_if: syn::ExprIf,
        visit_expr_match: syn::ExprMatch,
    }

    fn visit_item_mod(&mut self, node: &'ast syn::ItemMod) {
        if is_test_only(&node.attrs) {
            return;
        }
        // Inside an inline `mod`, `self` and `super` are relative to it.
        if let Some(scope) = &mut self.scope {
            scope.push(node.ident.to_string());
        }
        visit::visit_item_mod(self, node);
        if let Some(scope) = &mut self.scope {
            scope.pop();
        }
    }

    fn visit_item_use(&mut self, node: &'ast syn::ItemUse) {
        if is_test_only(&node.attrs) || node.leading_colon.is_some() {
            return;
        }
        let mut leaves = Vec::new();
        use_leaves(&node.tree, &mut Vec::new(), &mut leaves);
        for leaf in leaves {
            self.note(&leaf.segments, leaf.span);
        }
    }

    fn visit_path(&mut self, node: &'ast syn::Path) {
        if node.leading_colon.is_none() {
            let segments: Vec<String> = node.segments.iter().map(|s| s.ident.to_string()).collect();
            if let Some(first) = node.segments.first() {
                self.note(&segments, first.ident.span());
            }
        }
        visit::visit_path(self, node);
    }

    fn visit_macro(&mut self, node: &'ast syn::Macro) {
        self.scan(node.tokens.clone());
        visit::visit_macro(self, node);
    }

    /// `pub(super)` and `pub(in crate::x)` say who may see an item; they
    /// import nothing.
    fn visit_vis_restricted(&mut self, _: &'ast syn::VisRestricted) {}
}

/// Every import cycle, found as a back edge of a depth-first search.
fn cycles(edges: &Edges) -> Vec<String> {
    let mut graph: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        graph.entry(from).or_default().push(to);
    }
    fn visit<'a>(
        module: &'a str,
        graph: &BTreeMap<&'a str, Vec<&'a str>>,
        edges: &Edges,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
        found: &mut Vec<String>,
    ) {
        if done.contains(module) {
            return;
        }
        if let Some(at) = path.iter().position(|m| *m == module) {
            let ring: Vec<&str> = path[at..].iter().copied().chain([module]).collect();
            // Each step of the ring is a key of `edges`: the graph is
            // built from them, so the lookup cannot miss.
            let places: Vec<String> = ring
                .windows(2)
                .map(|pair| edges[&(pair[0].to_string(), pair[1].to_string())].to_string())
                .collect();
            found.push(format!(
                "import cycle {} ({})",
                ring.join(" -> "),
                places.join("; ")
            ));
            return;
        }
        path.push(module);
        for next in graph.get(module).into_iter().flatten() {
            visit(next, graph, edges, path, done, found);
        }
        path.pop();
        done.insert(module);
    }
    let mut done = BTreeSet::new();
    let mut found = Vec::new();
    for module in graph.keys() {
        visit(
            module,
            &graph,
            edges,
            &mut Vec::new(),
            &mut done,
            &mut found,
        );
    }
    found
}

/// A synthetic crate's layers: `low`, `other`, `folder::leaf` and the
/// binary's `main` below `high` and `folder`.
const TABLE: &str = "\
| layer | modules | what |
|---|---|---|
| 0 | `low`, `folder::leaf`, `other`, `main` | the bottom |
| 1 | `high`, `folder` | the top |
";

/// `check` on `TABLE` and these files, with an empty file for every table
/// module not given.
fn problems(files: &[(&str, &str)]) -> Vec<String> {
    problems_allowing(files, &[])
}

/// `problems`, with these imports allowed.
fn problems_allowing(files: &[(&str, &str)], allowed: &[(&str, &str)]) -> Vec<String> {
    let mut all: Vec<(&str, &str)> = files.to_vec();
    for filler in [
        "src/main.rs",
        "src/low.rs",
        "src/high.rs",
        "src/other.rs",
        "src/folder/mod.rs",
        "src/folder/leaf.rs",
    ] {
        if !files.iter().any(|(file, _)| *file == filler) {
            all.push((filler, ""));
        }
    }
    check_allowing(TABLE, &all, allowed)
}

#[test]
fn an_upward_import_after_a_mid_file_test_helper_is_reported() {
    let low = "
        pub struct Low;
        impl Low {
            #[cfg(test)]
            fn helper() {}
        }
        #[cfg(test)]
        fn helper() {}
        pub fn up() -> crate::high::High { todo!() }
    ";
    assert_eq!(
        problems(&[("src/low.rs", low)]),
        ["src/low.rs:9: `crate::high::High`: `low` (layer 0) imports `high` (layer 1), a higher layer"]
    );
}

#[test]
fn an_upward_import_in_test_code_is_not_reported() {
    let low = "
        pub struct Low;
        #[cfg(test)]
        mod tests {
            use crate::high::High;
        }
        #[cfg(all(test, feature = \"binary\"))]
        fn helper() -> crate::high::High { todo!() }
        impl Low {
            #[cfg(test)]
            fn helper() { crate::high::make(); }
        }
    ";
    assert_eq!(problems(&[("src/low.rs", low)]), Vec::<String>::new());
}

#[test]
fn code_compiled_when_not_testing_is_read() {
    let low = "#[cfg(not(test))]\nfn f() { let _ = crate::high::High; }";
    assert_eq!(
        problems(&[("src/low.rs", low)]),
        ["src/low.rs:2: `crate::high::High`: `low` (layer 0) imports `high` (layer 1), a higher layer"]
    );
}

#[test]
fn an_upward_super_import_in_a_folder_is_reported() {
    let leaf = "use super::Folder;";
    assert_eq!(
        problems(&[("src/folder/leaf.rs", leaf)]),
        ["src/folder/leaf.rs:1: `super::Folder`: `folder::leaf` (layer 0) imports `folder` (layer 1), a higher layer"]
    );
}

#[test]
fn a_visibility_is_not_an_import() {
    let leaf = "pub(super) struct Leaf {\n    pub(in crate::folder) field: u8,\n}";
    assert_eq!(
        problems(&[("src/folder/leaf.rs", leaf)]),
        Vec::<String>::new()
    );
}

#[test]
fn a_parent_may_use_its_lower_child() {
    let folder = "mod leaf;\npub use self::leaf::Leaf;\nfn f() { leaf::g(); }";
    assert_eq!(
        problems(&[("src/folder/mod.rs", folder)]),
        Vec::<String>::new()
    );
}

#[test]
fn an_import_cycle_is_reported() {
    let low = "use crate::other::Other;";
    let other = "fn f() { crate::low::g() }";
    assert_eq!(
        problems(&[("src/low.rs", low), ("src/other.rs", other)]),
        ["import cycle low -> other -> low (src/low.rs:1: `crate::other::Other`; src/other.rs:1: `crate::low::g`)"]
    );
}

#[test]
fn a_module_missing_from_the_table_is_reported() {
    assert_eq!(
        problems(&[("src/folder/extra.rs", "")]),
        ["src/folder/extra.rs: module `folder::extra` is not in the layer table of docs/architecture.md"]
    );
}

#[test]
fn a_table_entry_without_a_file_is_reported() {
    let files = [
        ("src/main.rs", ""),
        ("src/low.rs", ""),
        ("src/high.rs", ""),
        ("src/other.rs", ""),
        ("src/folder/mod.rs", ""),
    ];
    assert_eq!(
        check(TABLE, &files),
        ["docs/architecture.md: `folder::leaf` is in the layer table but no file in src/ is that module"]
    );
}

#[test]
fn a_grouped_use_is_read() {
    let low = "use crate::{other, folder::{leaf::Leaf, Folder}};";
    assert_eq!(
        problems(&[("src/low.rs", low)]),
        ["src/low.rs:1: `crate::folder::Folder`: `low` (layer 0) imports `folder` (layer 1), a higher layer"]
    );
}

#[test]
fn paths_in_macro_bodies_and_root_reexports_are_read() {
    let lib = "mod high;\npub use high::High as Top;";
    let low = "fn f() -> bool {\n    matches!(x(), crate::high::High)\n}";
    let other = "fn g() -> crate::Top { todo!() }";
    assert_eq!(
        problems(&[("src/lib.rs", lib), ("src/low.rs", low), ("src/other.rs", other)]),
        [
            "src/low.rs:2: `crate::high::High`: `low` (layer 0) imports `high` (layer 1), a higher layer",
            "src/other.rs:1: `crate::Top`: `other` (layer 0) imports `high` (layer 1), a higher layer",
        ]
    );
}

#[test]
fn module_paths_follow_folders() {
    assert_eq!(
        module_path("src/cache/lru.rs").as_deref(),
        Some("cache::lru")
    );
    assert_eq!(module_path("src/cache/mod.rs").as_deref(), Some("cache"));
    assert_eq!(
        module_path("src/http/routes/peer.rs").as_deref(),
        Some("http::routes::peer")
    );
    assert_eq!(module_path("src/main.rs").as_deref(), Some("main"));
    assert_eq!(module_path("src/lib.rs").as_deref(), Some(""));
}

#[test]
fn the_binary_imports_through_the_library_reexports() {
    let lib = "mod high;\npub use high::run as serve;";
    let main = "fn main() {\n    groupcached::serve();\n}";
    assert_eq!(
        problems(&[("src/lib.rs", lib), ("src/main.rs", main)]),
        ["src/main.rs:2: `groupcached::serve`: `main` (layer 0) imports `high` (layer 1), a higher layer"]
    );
}

#[test]
fn an_allowed_import_passes_until_it_is_gone() {
    let allowed = [("low", "high")];
    let low = "use crate::high::High;";
    assert_eq!(
        problems_allowing(&[("src/low.rs", low)], &allowed),
        Vec::<String>::new()
    );
    assert_eq!(
        problems_allowing(&[], &allowed),
        ["`low` no longer imports `high`: remove the pair from WAITING_FOR_THE_MOVE"]
    );
}

#[test]
fn a_file_declared_for_tests_only_is_not_read() {
    let folder = "#[cfg(test)]\nmod testkit;";
    let testkit = "use crate::high::High;";
    assert_eq!(
        problems(&[
            ("src/folder/mod.rs", folder),
            ("src/folder/testkit.rs", testkit)
        ]),
        Vec::<String>::new()
    );
}
