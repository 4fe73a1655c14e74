//! The prompt library: every `<sounds>/<lang>/<name>.wav` loaded once at start.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

include!(concat!(env!("OUT_DIR"), "/embedded_sounds.rs"));

/// Prompts by language and name, shared read-only with media workers.
#[derive(Debug, Default)]
pub struct SoundLibrary {
    prompts: HashMap<(String, String), Arc<[i16]>>,
}

impl SoundLibrary {
    /// Loads every WAV below `dir`. Unreadable or wrongly formatted files are errors that name
    /// the file, so a broken prompt is found at start, not in the middle of a call.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let mut files = Vec::new();
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
                files.push((
                    lang_name.clone(),
                    stem.to_string(),
                    bytes,
                    path.display().to_string(),
                ));
            }
        }
        Self::from_wavs(
            files
                .iter()
                .map(|(l, n, b, p)| (l.as_str(), n.as_str(), b.as_slice(), p.as_str())),
        )
    }

    /// The prompts built into the binary (the repository's `sounds/`), for a server started
    /// where no prompt directory is configured or present.
    pub fn embedded() -> anyhow::Result<Self> {
        Self::from_wavs(
            EMBEDDED_SOUNDS
                .iter()
                .map(|(lang, name, bytes)| (*lang, *name, *bytes, "(built in)")),
        )
    }

    /// The prompts of the `sounds` setting, or the built-in ones when that is the default
    /// `sounds` and there is no such directory here: `amtsleitung serve` runs anywhere on its
    /// defaults, while a directory an admin configured must exist.
    pub fn configured(dir: &Path) -> anyhow::Result<Self> {
        if dir == crate::config::Config::default().sounds && !dir.exists() {
            tracing::info!("no ./sounds here: using the built-in prompts");
            Self::embedded()
        } else {
            Self::load(dir)
        }
    }

    fn from_wavs<'a>(
        files: impl Iterator<Item = (&'a str, &'a str, &'a [u8], &'a str)>,
    ) -> anyhow::Result<Self> {
        let mut prompts = HashMap::new();
        for (lang, name, bytes, origin) in files {
            let wav = media::wav::parse_wav(bytes)
                .with_context(|| format!("prompt {origin} {lang}/{name} is not a usable WAV"))?;
            // Prompts are kept at one rate; other rates (8 kHz recordings) are converted
            // once here so the media path only ever resamples from that rate.
            let samples = media::wav::to_prompt(&wav).map_err(|err| {
                anyhow::anyhow!("prompt {origin} {lang}/{name} cannot be converted: {err}")
            })?;
            prompts.insert((lang.to_string(), name.to_string()), samples);
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
