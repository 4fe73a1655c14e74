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
    /// What a held party hears, looped (the `music-on-hold` setting or the shipped file).
    music_on_hold: Option<Arc<[i16]>>,
}

/// The shipped music on hold (made by `sounds/make-music-on-hold.sh`): one language-free file
/// next to the prompts' language directories, so it is built in here by hand.
static SHIPPED_MUSIC_ON_HOLD: &[u8] = include_bytes!("../../../sounds/music-on-hold.wav");

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
        // The tone after a voicemail greeting: one 1 kHz note of 400 ms, as answering
        // machines have taught callers to expect.
        let mut beep = vec![0i16; 16_000 * 400 / 1000];
        media::tone::ToneGenerator::new(16_000, media::tone::ToneSpec::single(1000.0, -12.0))
            .fill(&mut beep);
        let beep: Arc<[i16]> = Arc::from(beep);
        for lang in ["de", "en"] {
            prompts.insert(
                (lang.to_string(), "voicemail-beep".to_string()),
                beep.clone(),
            );
        }
        let music = media::wav::parse_wav(SHIPPED_MUSIC_ON_HOLD)
            .context("the shipped music on hold is not a usable WAV")?;
        let music = media::wav::to_prompt(&music).map_err(|err| {
            anyhow::anyhow!("the shipped music on hold cannot be converted: {err}")
        })?;
        Ok(Self {
            prompts,
            music_on_hold: Some(music),
        })
    }

    /// Replaces the music on hold with the WAV at `path` (the `music-on-hold` setting); an
    /// unreadable or unusable file is an error naming it, found at start.
    pub fn with_music_on_hold(mut self, path: &Path) -> anyhow::Result<Self> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read music-on-hold {}", path.display()))?;
        let wav = media::wav::parse_wav(&bytes)
            .with_context(|| format!("music-on-hold {} is not a usable WAV", path.display()))?;
        let music = media::wav::to_prompt(&wav).map_err(|err| {
            anyhow::anyhow!(
                "music-on-hold {} cannot be converted: {err}",
                path.display()
            )
        })?;
        if music.is_empty() {
            anyhow::bail!("music-on-hold {} holds no audio", path.display());
        }
        self.music_on_hold = Some(music);
        Ok(self)
    }

    /// The music on hold, at the prompts' rate.
    pub fn music_on_hold(&self) -> Option<Arc<[i16]>> {
        self.music_on_hold.clone()
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
