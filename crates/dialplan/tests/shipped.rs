//! The shipped default.toml and every example compile cleanly against the shipped sounds.

mod common;

use common::*;
use dialplan::SourceFile;

fn toml_files(dir: &str, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            toml_files(&p.to_string_lossy(), out);
        } else if p.extension().is_some_and(|e| e == "toml") {
            out.push(p.to_string_lossy().into_owned());
        }
    }
}

#[test]
fn default_toml_compiles_without_warnings() {
    let c = default_plan();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn every_example_directory_compiles_without_warnings() {
    let mut dirs = vec![];
    let Ok(entries) = std::fs::read_dir(format!("{DIALPLANS}/examples")) else {
        panic!("dialplans/examples is missing");
    };
    for e in entries.flatten() {
        if e.path().is_dir() {
            dirs.push(e.path().to_string_lossy().into_owned());
        }
    }
    assert!(!dirs.is_empty());
    for dir in dirs {
        let mut paths = Vec::new();
        toml_files(&dir, &mut paths);
        let files: Vec<SourceFile> = paths
            .iter()
            .map(|p| SourceFile {
                path: p.clone(),
                text: std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{p}: {e}")),
            })
            .collect();
        let c = compile_ok(&files, &ctx_townhall());
        assert!(c.warnings.is_empty(), "{dir}: {:?}", c.warnings);
    }
    assert!(townhall_plan().warnings.is_empty());
}

#[test]
fn default_toml_references_only_shipped_sounds() {
    // Compiling with only the shipped sounds known fails on any other sound name.
    let mut ctx = ctx_sounds();
    if let Some(s) = ctx.sounds.as_mut() {
        s.remove("welcome");
    }
    let err = dialplan::compile(&[shipped("default.toml")], &ctx)
        .err()
        .unwrap_or_default();
    assert_eq!(err.len(), 1);
    assert!(err[0].message.contains("\"welcome\""));
}
