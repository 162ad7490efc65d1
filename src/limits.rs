//! What a caller may ask of the model: its class names, the samplers and step counts the page
//! offers, the guidance intervals and the numeric ranges. They live in www/limits.json, which the
//! page reads as well, so that the page, the embed element and the engine agree.

use serde::Deserialize;
use std::sync::OnceLock;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    pub classes: Vec<String>,
    pub samplers: Vec<String>,
    pub default_sampler: String,
    /// The step counts offered for each sampler that takes one.
    pub steps: std::collections::BTreeMap<String, Steps>,
    pub intervals: Vec<String>,
    /// The β schedules the forward explorer compares.
    pub schedules: Vec<String>,
    pub ranges: Ranges,
}

#[derive(Debug, Deserialize)]
pub struct Steps {
    pub choices: Vec<usize>,
    pub def: usize,
}

#[derive(Debug, Deserialize)]
pub struct Ranges {
    pub eta: Range,
    pub seed: Range,
    pub guidance: Range,
    pub batch: Range,
}

/// A closed interval, whole numbers only where `int`; `def` is the page's default.
#[derive(Debug, Deserialize)]
pub struct Range {
    pub min: f64,
    pub max: f64,
    #[serde(default)]
    pub def: Option<f64>,
    #[serde(default)]
    pub int: bool,
}

impl Range {
    /// Whether `value` lies in the range (and is whole, where it must be); the error names `what`.
    pub fn check(&self, what: &str, value: f64) -> Result<(), String> {
        let whole = !self.int || value.fract() == 0.0;
        if value.is_finite() && whole && (self.min..=self.max).contains(&value) {
            Ok(())
        } else {
            Err(format!("{what} must be {}–{}, not {value}", self.min, self.max))
        }
    }
}

/// The limits, parsed once from the copy of www/limits.json compiled into the crate.
pub fn limits() -> &'static Limits {
    static LIMITS: OnceLock<Limits> = OnceLock::new();
    LIMITS.get_or_init(|| serde_json::from_str(include_str!("../www/limits.json")).expect("www/limits.json is valid"))
}

#[cfg(test)]
mod tests {
    use super::limits;
    use crate::sampler::{SamplerKind, parse_interval};
    use crate::schedule::BetaSchedule;

    /// Every name the page may send is one the engine knows, and the ranges are ranges.
    #[test]
    fn the_pages_choices_are_the_engines() {
        let l = limits();
        assert_eq!(l.classes.len(), 10, "Fashion-MNIST's classes");
        let schedule = crate::schedule::Schedule::new(BetaSchedule::Linear, 1000);
        for name in &l.samplers {
            let steps = l.steps.get(name).map(|s| s.choices.iter().chain([&s.def]));
            for &n in steps.into_iter().flatten() {
                SamplerKind::named(name, n, 0.0).unwrap().build(&schedule, crate::sampler::X0::Clipped).unwrap();
            }
            SamplerKind::named(name, 50, 0.0).unwrap();
        }
        assert!(l.samplers.contains(&l.default_sampler) && l.steps.keys().all(|s| l.samplers.contains(s)));
        assert!(l.steps.values().all(|s| s.choices.contains(&s.def)), "each default is one of its choices");
        for name in &l.schedules {
            BetaSchedule::parse(name).unwrap();
        }
        for interval in l.intervals.iter().filter(|i| *i != "all") {
            parse_interval(interval).unwrap();
        }
        for r in [&l.ranges.eta, &l.ranges.seed, &l.ranges.guidance, &l.ranges.batch] {
            assert!(r.min <= r.max && r.def.is_none_or(|d| r.check("default", d).is_ok()), "{r:?}");
        }
        assert!(l.ranges.batch.check("batch", 17.0).is_err() && l.ranges.batch.check("batch", 1.5).is_err());
    }
}
