//! The library's modules depend on each other without loops, but for `layer` ↔ `service` (a
//! layer builds its service, a service names its layer's type, as in tower-http). Read from the
//! sources: every `crate::<module>` a module's non-test code names is an edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module name → the modules it names. A directory module counts as one (its files together).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        if name == "lib" {
            continue;
        }
        if path.is_dir() {
            let mut stack = vec![path];
            while let Some(dir) = stack.pop() {
                for inner in std::fs::read_dir(dir).unwrap() {
                    let inner = inner.unwrap().path();
                    if inner.is_dir() {
                        stack.push(inner);
                    } else {
                        files.push((name.clone(), inner));
                    }
                }
            }
        } else {
            files.push((name, path));
        }
    }
    for (module, file) in files {
        let text = std::fs::read_to_string(&file).unwrap();
        // Test modules may reach anywhere; comments (doc links included) are not code.
        let code: String = text
            .split("#[cfg(test)]")
            .next()
            .unwrap()
            .lines()
            .map(|line| line.split("//").next().unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        let code = code.as_str();
        let edges = graph.entry(module.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            let preceded_by_ident = code[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_');
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            // `crate::{a, b}` and items re-exported at the root (`crate::Secret`) are resolved
            // by the caller's `use`: only lower-case module paths are edges.
            if preceded_by_ident || name.is_empty() || !name.starts_with(|c: char| c.is_lowercase())
            {
                continue;
            }
            if name != module && rest[name.len()..].starts_with("::") {
                edges.insert(name);
            }
        }
        for group in code.split("use crate::{").skip(1) {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for part in group.split(',') {
                let name = part.trim().split("::").next().unwrap_or("").to_owned();
                if !name.is_empty()
                    && name != module
                    && name.starts_with(|c: char| c.is_lowercase())
                {
                    edges.insert(name);
                }
            }
        }
    }
    graph
}

/// Every loop, as the set of modules on it (strongly connected components of two or more).
fn loops(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    let reaches = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_owned()];
        while let Some(m) = stack.pop() {
            for next in graph.get(&m).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    };
    let reach: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|m| (m, reaches(m))).collect();
    let mut found: Vec<BTreeSet<String>> = Vec::new();
    for (m, from_m) in &reach {
        let component: BTreeSet<String> = from_m
            .iter()
            .filter(|other| reach.get(other).is_some_and(|r| r.contains(*m)))
            .cloned()
            .collect();
        if component.len() > 1 && !found.contains(&component) {
            found.push(component);
        }
    }
    found
}

#[test]
fn the_only_module_loop_is_layer_and_service() {
    let graph = graph();
    assert!(
        graph["verify"].contains("token"),
        "the reader found no edges: {graph:?}"
    );
    let expected: BTreeSet<String> = ["layer", "service"].map(String::from).into();
    assert_eq!(loops(&graph), vec![expected], "{graph:#?}");
}

#[test]
fn a_loop_is_seen() {
    let mut graph = BTreeMap::new();
    graph.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    graph.insert("b".to_owned(), BTreeSet::from(["c".to_owned()]));
    graph.insert("c".to_owned(), BTreeSet::from(["a".to_owned()]));
    graph.insert("d".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert_eq!(loops(&graph).len(), 1);
    assert_eq!(loops(&graph)[0].len(), 3);
}
