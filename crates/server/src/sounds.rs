//! The prompt library: every `<sounds>/<lang>/<name>.wav` loaded once at start.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

/// Prompts by language and name, shared read-only with media workers.
#[derive(Debug, Default)]
pub struct SoundLibrary {
    prompts: HashMap<(String, String), Arc<[i16]>>,
}

impl SoundLibrary {
    /// Loads every WAV below `dir`. Unreadable or wrongly formatted files are errors that name
    /// the file, so a broken prompt is found at start, not in the middle of a call.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let mut prompts = HashMap::new();
        let langs = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read sounds directory {}", dir.display()))?;
        for lang in langs {
            let lang = lang?;
            if !lang.file_type()?.is_dir() {
                continue;
            }
            let lang_name = lang.file_name().to_string_lossy().into_owned();
            for file in std::fs::read_dir(lang.path())? {
                let path = file?.path();
                if path.extension().and_then(|e| e.to_str()) != Some("wav") {
                    continue;
                }
                let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
                    continue;
                };
                let bytes = std::fs::read(&path)
                    .with_context(|| format!("cannot read prompt {}", path.display()))?;
                let wav = media::wav::parse_wav(&bytes)
                    .with_context(|| format!("prompt {} is not a usable WAV", path.display()))?;
                // Prompts are kept at one rate; other rates (8 kHz recordings) are converted
                // once here so the media path only ever resamples from that rate.
                let samples = media::wav::to_prompt(&wav).map_err(|err| {
                    anyhow::anyhow!("prompt {} cannot be converted: {err}", path.display())
                })?;
                prompts.insert((lang_name.clone(), stem.to_string()), samples);
            }
        }
        // Join and leave tones are made here rather than shipped: two short rising or falling
        // notes, quiet enough not to cover speech.
        for (name, notes) in [
            ("join-tone", [660.0, 880.0]),
            ("leave-tone", [880.0, 660.0]),
        ] {
            let mut samples = Vec::new();
            for freq in notes {
                let mut note = vec![0i16; 16_000 * 120 / 1000];
                media::tone::ToneGenerator::new(16_000, media::tone::ToneSpec::single(freq, -20.0))
                    .fill(&mut note);
                samples.extend_from_slice(&note);
            }
            for lang in ["de", "en"] {
                prompts.insert(
                    (lang.to_string(), name.to_string()),
                    Arc::from(samples.clone()),
                );
            }
        }
        Ok(Self { prompts })
    }

    /// A prompt in `lang`, falling back to German, then English.
    pub fn get(&self, lang: &str, name: &str) -> Option<Arc<[i16]>> {
        [lang, "de", "en"]
            .iter()
            .find_map(|l| self.prompts.get(&(l.to_string(), name.to_string())))
            .cloned()
    }

    /// Names available in any language (for dialplan checks).
    pub fn names(&self) -> BTreeSet<String> {
        self.prompts.keys().map(|(_, name)| name.clone()).collect()
    }

    /// Number of prompt files loaded.
    pub fn len(&self) -> usize {
        self.prompts.len()
    }
}
