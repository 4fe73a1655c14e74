//! Embeds the shipped prompts (`sounds/<lang>/<name>.wav`) so that `amtsleitung serve` runs
//! from any directory on its built-in defaults (see `sounds::SoundLibrary::embedded`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    entries.sort();
    entries
}

fn main() {
    let sounds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sounds");
    println!("cargo:rerun-if-changed={}", sounds.display());
    let mut table = String::from(
        "/// The shipped prompts: (language, name, WAV bytes).\npub static EMBEDDED_SOUNDS: &[(&str, &str, &[u8])] = &[\n",
    );
    for lang in sorted_entries(&sounds).into_iter().filter(|p| p.is_dir()) {
        println!("cargo:rerun-if-changed={}", lang.display());
        let lang_name = lang
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        for wav in sorted_entries(&lang) {
            if wav.extension().and_then(|e| e.to_str()) != Some("wav") {
                continue;
            }
            let Some(stem) = wav.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            let _ = writeln!(
                table,
                "    ({lang_name:?}, {stem:?}, include_bytes!({:?})),",
                wav.canonicalize().unwrap_or(wav.clone())
            );
        }
    }
    table.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("embedded_sounds.rs");
    std::fs::write(out, table).expect("write embedded_sounds.rs");
}
