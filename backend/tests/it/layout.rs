//! The crate's top-level modules depend on each other in one direction only: the rules
//! on the ports, the adapters on the ports, the edge on the rules, tests on all. Read
//! from the sources (every `crate::module` path in each module's files), so a new
//! import that closes a cycle fails here, naming it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `path` (itself, when it is a file).
fn sources(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).expect("a readable source directory") {
        files.extend(sources(&entry.expect("a directory entry").path()));
    }
    files.retain(|file| file.extension().is_some_and(|ext| ext == "rs"));
    files
}

/// The names a source file's code (not its comments) reaches through `crate::`:
/// `crate::a::b` and each name of `crate::{a, b::c}`.
fn crate_paths(text: &str) -> Vec<String> {
    let code: String = text
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .flat_map(|line| [line, "\n"])
        .collect();
    let mut names = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            names.extend(
                group
                    .split(',')
                    .filter_map(|part| part.trim().split("::").next())
                    .filter(|name| !name.is_empty())
                    .map(str::to_string),
            );
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            names.push(name);
        }
    }
    names
}

/// The top-level modules and what each one names of the others.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules = BTreeMap::new();
    for entry in std::fs::read_dir(&src).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        let name = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .expect("a UTF-8 file name")
            .to_string();
        if name == "lib" || name == "bin" {
            continue;
        }
        modules.insert(name, path);
    }
    let known: BTreeSet<String> = modules.keys().cloned().collect();
    modules
        .into_iter()
        .map(|(name, path)| {
            let mut uses = BTreeSet::new();
            for file in sources(&path) {
                let text = std::fs::read_to_string(&file).expect("a readable source file");
                for used in crate_paths(&text) {
                    assert!(
                        known.contains(&used),
                        "{} names `crate::{used}`, which is not a module: name the module \
                         that defines it, so the dependency shows here",
                        file.display()
                    );
                    if used != name {
                        uses.insert(used);
                    }
                }
            }
            (name, uses)
        })
        .collect()
}

/// A path of modules that leads from `module` back to itself, if any.
fn cycle_through(
    graph: &BTreeMap<String, BTreeSet<String>>,
    module: &str,
    path: &mut Vec<String>,
) -> Option<Vec<String>> {
    if let Some(start) = path.iter().position(|seen| seen == module) {
        let mut cycle = path[start..].to_vec();
        cycle.push(module.to_string());
        return Some(cycle);
    }
    path.push(module.to_string());
    for next in &graph[module] {
        if let Some(cycle) = cycle_through(graph, next, path) {
            return Some(cycle);
        }
    }
    path.pop();
    None
}

#[test]
fn top_level_modules_import_each_other_in_one_direction_only() {
    let graph = module_graph();
    for module in graph.keys() {
        if let Some(cycle) = cycle_through(&graph, module, &mut Vec::new()) {
            panic!(
                "the modules {} import each other; the graph is {graph:#?}",
                cycle.join(" -> ")
            );
        }
    }
}

#[test]
fn the_ports_depend_on_no_adapter_rule_or_edge() {
    let graph = module_graph();
    for module in ["limits", "store"] {
        for used in &graph[module] {
            assert!(
                ["config", "limits", "sdk"].contains(&used.as_str()),
                "{module} depends on {used}: {graph:#?}"
            );
        }
    }
}

#[test]
fn the_checker_sees_grouped_and_nested_imports() {
    assert_eq!(
        crate_paths(
            "use crate::{store::Connection, limits};\n/// [`crate::apigw`]\nlet x = crate::sdk::timeouts();"
        ),
        ["store", "limits", "sdk"]
    );
}
