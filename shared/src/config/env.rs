//! A small reader that collects every configuration problem at once, so an
//! operator fixes them in one go instead of one restart per typo.

use std::{
    collections::{BTreeSet, HashMap},
    fmt,
    str::FromStr,
    time::Duration,
};

use secrecy::SecretString;

/// Where raw values come from: the process environment in the binaries, a map
/// in tests (tests never read the developer's shell).
pub enum Source {
    Process,
    Map(HashMap<String, String>),
}

/// One problem with one variable, rendered as `NAME: what is wrong`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub variable: &'static str,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.variable, self.message)
    }
}

/// Every problem found while reading the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigProblem>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

pub struct EnvReader {
    source: Source,
    production: bool,
    problems: Vec<ConfigProblem>,
    /// Every name asked for, set or not: the list of settings Bourse has
    /// (`Config::variables`), which the README's table and
    /// `docker-compose.yml` are checked against.
    names: BTreeSet<&'static str>,
}

impl EnvReader {
    pub fn new(source: Source) -> Self {
        Self {
            source,
            production: false,
            problems: Vec::new(),
            names: BTreeSet::new(),
        }
    }

    pub fn set_production(&mut self, production: bool) {
        self.production = production;
    }

    /// The raw value; an empty string counts as unset so `FOO=` in a `.env`
    /// file falls back to the default instead of failing to parse.
    pub fn raw(&mut self, name: &'static str) -> Option<String> {
        self.names.insert(name);
        let value = match &self.source {
            Source::Process => std::env::var(name).ok(),
            Source::Map(map) => map.get(name).cloned(),
        };
        value.filter(|v| !v.trim().is_empty())
    }

    pub fn problem(&mut self, variable: &'static str, message: impl Into<String>) {
        self.problems.push(ConfigProblem {
            variable,
            message: message.into(),
        });
    }

    /// Parses `name` or returns `default`; `expected` describes a valid value
    /// for the error line.
    pub fn parse_or<T: FromStr>(&mut self, name: &'static str, default: T, expected: &str) -> T {
        match self.raw(name) {
            None => default,
            Some(raw) => match raw.trim().parse::<T>() {
                Ok(value) => value,
                Err(_) => {
                    self.problem(name, format!("invalid value {raw:?} (expected {expected})"));
                    default
                }
            },
        }
    }

    /// Like [`Self::parse_or`] and also checks an inclusive range.
    pub fn range_or<T>(&mut self, name: &'static str, default: T, min: T, max: T) -> T
    where
        T: FromStr + PartialOrd + Copy + fmt::Display,
    {
        let expected = format!("a number from {min} to {max}");
        let value = self.parse_or(name, default, &expected);
        if value < min || value > max {
            self.problem(
                name,
                format!("{value} is out of range (expected {expected})"),
            );
            return default;
        }
        value
    }

    pub fn string_or(&mut self, name: &'static str, default: &str) -> String {
        self.raw(name).unwrap_or_else(|| default.to_owned())
    }

    pub fn optional(&mut self, name: &'static str) -> Option<String> {
        self.raw(name)
    }

    /// A secret with a development default. In production the variable must
    /// be set explicitly: a forgotten secret must never silently become the
    /// well-known local one.
    pub fn secret(&mut self, name: &'static str, local_default: &str) -> SecretString {
        match self.raw(name) {
            Some(value) => SecretString::from(value),
            None if self.production => {
                self.problem(name, "not set (required when APP_ENV=production)");
                SecretString::from(String::new())
            }
            None => SecretString::from(local_default.to_owned()),
        }
    }

    pub fn optional_secret(&mut self, name: &'static str) -> Option<SecretString> {
        self.raw(name).map(SecretString::from)
    }

    /// Parses one of a fixed set of lowercase words.
    pub fn choice_or<T: Copy>(
        &mut self,
        name: &'static str,
        default: T,
        choices: &[(&str, T)],
    ) -> T {
        let Some(raw) = self.raw(name) else {
            return default;
        };
        let wanted = raw.trim().to_ascii_lowercase();
        if let Some((_, value)) = choices.iter().find(|(word, _)| *word == wanted) {
            return *value;
        }
        let words: Vec<&str> = choices.iter().map(|(w, _)| *w).collect();
        self.problem(
            name,
            format!(
                "invalid value {raw:?} (expected one of: {})",
                words.join(", ")
            ),
        );
        default
    }

    /// A cron expression with seconds (six fields, UTC), checked for shape
    /// here and parsed by the worker.
    pub fn cron_or(&mut self, name: &'static str, default: &str) -> String {
        let cron = self.string_or(name, default);
        if cron.split_whitespace().count() != 6 {
            self.problem(
                name,
                format!("invalid value {cron:?} (expected six fields with seconds)"),
            );
        }
        cron
    }

    /// The names read so far, in order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.names.iter().copied()
    }

    pub fn finish(self) -> Result<(), ConfigErrors> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(self.problems))
        }
    }
}

pub(super) fn secs(value: u64) -> Duration {
    Duration::from_secs(value)
}

pub(super) fn millis(value: u64) -> Duration {
    Duration::from_millis(value)
}
