//! What an evaluation measured, as the first line of its journal records it: a journal is finished
//! only by a run of the same settings, and journals are compared only where their settings allow.

use crate::SamplerArg;
use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// The settings that decide an evaluation's samples and the space they are measured in.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Settings {
    /// The weights file's [`fingerprint`].
    pub weights: String,
    /// The classifier file's [`fingerprint`].
    pub classifier: String,
    pub sampler: SamplerArg,
    /// The reverse process's steps: DDIM's or DPM-Solver's --steps, or all T of DDPM.
    pub steps: usize,
    pub clip_x0: bool,
    pub guidance: f32,
    /// The time indices LO-HI the guidance applies at (all when absent).
    pub guidance_interval: Option<(usize, usize)>,
    pub count: usize,
    pub batch: usize,
    pub seed: u64,
}

/// The settings that only say where the noise came from and how much of it: samples that differ in
/// these alone are samples of one setting, which `ddpm compare` may pair or average.
pub const NOISE: [&str; 3] = ["count", "batch", "seed"];

/// The one setting the text form writes without a key.
const CLIPPED: &str = "x̂0 clipped";

/// Names a file by its size and CRC-32, so a journal is never resumed for other weights.
pub fn fingerprint(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut crc = flate2::Crc::new();
    crc.update(&bytes);
    Ok(format!("{} bytes crc32 {:08x}", bytes.len(), crc.sum()))
}

fn sampler_name(sampler: SamplerArg) -> &'static str {
    match sampler {
        SamplerArg::Ddpm => "DDPM",
        SamplerArg::DdpmTilde => "DDPM (σ² = β̃)",
        SamplerArg::Ddim => "DDIM",
        SamplerArg::DpmSolver => "DPM-Solver++(2M)",
    }
}

impl Settings {
    /// A journal header's settings: JSON fields, or the text that journals written before them hold
    /// (the committed ones among them).
    pub fn from_header(value: serde_json::Value) -> Result<Self, String> {
        match value {
            serde_json::Value::String(text) => Self::from_text(&text),
            value => serde_json::from_value(value).map_err(|e| format!("settings: {e}")),
        }
    }

    /// Parses the text form ("weights …, classifier …, DDIM 50 steps, guidance at t 0-600,
    /// guidance 1.5, count 500, batch 250, seed 0"), which [`Settings`]' `Display` writes.
    pub fn from_text(text: &str) -> Result<Self, String> {
        Self::parse_text(text).ok_or_else(|| format!("settings not understood: {text:?}"))
    }

    fn parse_text(text: &str) -> Option<Self> {
        let parts: Vec<&str> = text.split(", ").collect();
        let [weights, classifier, sampler, extras @ .., guidance, count, batch, seed] = parts.as_slice() else { return None };
        let (name, steps) = sampler.strip_suffix(" steps")?.rsplit_once(' ')?;
        let sampler = SamplerArg::value_variants().iter().copied().find(|&s| sampler_name(s) == name)?;
        let mut settings = Settings {
            weights: value(weights, "weights")?,
            classifier: value(classifier, "classifier")?,
            sampler,
            steps: steps.parse().ok()?,
            clip_x0: false,
            guidance: value(guidance, "guidance")?,
            guidance_interval: None,
            count: value(count, "count")?,
            batch: value(batch, "batch")?,
            seed: value(seed, "seed")?,
        };
        for &extra in extras {
            if extra == CLIPPED {
                settings.clip_x0 = true;
            } else {
                let (lo, hi) = extra.strip_prefix("guidance at t ")?.split_once('-')?;
                settings.guidance_interval = Some((lo.parse().ok()?, hi.parse().ok()?));
            }
        }
        Some(settings)
    }

    /// The reverse process as `ddpm eval` reports it: "DDIM 50 steps, guidance at t 0-600".
    pub fn sampling(&self) -> String {
        let mut text = format!("{} {} steps", sampler_name(self.sampler), self.steps);
        if self.clip_x0 {
            text += &format!(", {CLIPPED}");
        }
        if let Some((lo, hi)) = self.guidance_interval {
            text += &format!(", guidance at t {lo}-{hi}");
        }
        text
    }

    /// Each setting by its field name, with its value as the text form writes it.
    fn fields(&self) -> [(&'static str, String); 10] {
        let interval = self.guidance_interval.map_or("none".into(), |(lo, hi)| format!("{lo}-{hi}"));
        [
            ("weights", self.weights.clone()),
            ("classifier", self.classifier.clone()),
            ("sampler", sampler_name(self.sampler).into()),
            ("steps", self.steps.to_string()),
            ("clip_x0", self.clip_x0.to_string()),
            ("guidance", self.guidance.to_string()),
            ("guidance_interval", interval),
            ("count", self.count.to_string()),
            ("batch", self.batch.to_string()),
            ("seed", self.seed.to_string()),
        ]
    }

    /// The settings, other than `ignoring`, in which `self` and `other` differ: "guidance (1.5 and
    /// 2), seed (0 and 1)"; `None` when they agree.
    pub fn differences(&self, other: &Self, ignoring: &[&str]) -> Option<String> {
        let differ: Vec<String> = (self.fields().into_iter().zip(other.fields()))
            .filter(|((key, a), (_, b))| a != b && !ignoring.contains(key))
            .map(|((key, a), (_, b))| format!("{key} ({a} and {b})"))
            .collect();
        (!differ.is_empty()).then(|| differ.join(", "))
    }
}

/// The text form, as journals before the JSON fields held it and as `ddpm compare` prints it.
impl fmt::Display for Settings {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let Settings { weights, classifier, guidance, count, batch, seed, .. } = self;
        write!(f, "weights {weights}, classifier {classifier}, {}, guidance {guidance}, count {count}, batch {batch}, seed {seed}", self.sampling())
    }
}

/// The value of a "key value" part of the text form.
fn value<T: std::str::FromStr>(part: &str, key: &str) -> Option<T> {
    part.strip_prefix(key)?.strip_prefix(' ')?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Headers of committed journals (docs/lab/eval/), one of each form.
    const OLD: [&str; 4] = [
        "weights 2534959 bytes crc32 b0d845b5, classifier 1687592 bytes crc32 9cc44be1, DDPM 1000 steps, guidance at t 0-600, guidance 1.25, count 500, batch 25, seed 1",
        "weights 2534959 bytes crc32 b0d845b5, classifier 1687592 bytes crc32 9cc44be1, DDPM 1000 steps, x̂0 clipped, guidance at t 0-600, guidance 1.5, count 500, batch 25, seed 0",
        "weights 2534959 bytes crc32 b0d845b5, classifier 1687592 bytes crc32 9cc44be1, DDPM (σ² = β̃) 1000 steps, guidance at t 0-600, guidance 1.5, count 500, batch 250, seed 0",
        "weights 2534959 bytes crc32 b0d845b5, classifier 1687592 bytes crc32 9cc44be1, DDIM 50 steps, guidance 2, count 500, batch 250, seed 0",
    ];

    #[test]
    fn an_old_settings_line_parses_into_the_struct_and_round_trips() {
        let settings = Settings::from_header(serde_json::Value::String(OLD[0].into())).unwrap();
        let expected = Settings {
            weights: "2534959 bytes crc32 b0d845b5".into(),
            classifier: "1687592 bytes crc32 9cc44be1".into(),
            sampler: SamplerArg::Ddpm,
            steps: 1000,
            clip_x0: false,
            guidance: 1.25,
            guidance_interval: Some((0, 600)),
            count: 500,
            batch: 25,
            seed: 1,
        };
        assert_eq!(settings, expected);
        for text in OLD {
            let settings = Settings::from_text(text).unwrap();
            assert_eq!(settings.to_string(), text, "the text form round-trips");
            let json = serde_json::to_value(&settings).unwrap();
            assert_eq!(Settings::from_header(json).unwrap(), settings, "so does the JSON form");
        }
        assert_eq!(Settings::from_text(OLD[1]).unwrap().sampling(), "DDPM 1000 steps, x̂0 clipped, guidance at t 0-600");
        assert_eq!(Settings::from_text(OLD[2]).unwrap().sampler, SamplerArg::DdpmTilde);
    }

    #[test]
    fn text_that_is_not_settings_is_refused() {
        for text in ["A", "weights 1 bytes crc32 0, DDPM 1000 steps, guidance 1.5, count 500, batch 25, seed 3", &OLD[0].replace("seed 1", "seed one")] {
            assert!(Settings::from_text(text).unwrap_err().contains("not understood"), "{text}");
        }
    }

    #[test]
    fn differences_name_the_fields() {
        let a = Settings::from_text(OLD[0]).unwrap();
        let b = Settings { guidance: 1.5, seed: 2, ..a.clone() };
        assert_eq!(a.differences(&a, &[]), None);
        assert_eq!(a.differences(&b, &[]).unwrap(), "guidance (1.25 and 1.5), seed (1 and 2)");
        assert_eq!(a.differences(&b, &NOISE).unwrap(), "guidance (1.25 and 1.5)");
        assert_eq!(a.differences(&Settings { batch: 250, ..a.clone() }, &NOISE), None);
    }
}
