//! The field checker every section uses: errors that name the file and the field, numbers in
//! a range, bit rates with k/M suffixes, and encoder options the encoder has.

use std::collections::BTreeMap;

use crate::preset::spec::Bitrate;
use crate::preset::{Capabilities, PresetError};

/// Checks fields of one file, asking `caps` what the engine's encoders take.
pub(super) struct Check<'a> {
    pub(super) file: &'a str,
    pub(super) caps: &'a dyn Capabilities,
}

impl Check<'_> {
    pub(super) fn err(&self, field: &str, problem: impl Into<String>) -> PresetError {
        PresetError::Invalid {
            file: self.file.to_string(),
            field: field.to_string(),
            problem: problem.into(),
        }
    }

    pub(super) fn int_in(
        &self,
        field: &str,
        v: Option<i64>,
        lo: i64,
        hi: i64,
    ) -> Result<Option<u32>, PresetError> {
        match v {
            None => Ok(None),
            Some(v) if (lo..=hi).contains(&v) => Ok(Some(v as u32)),
            Some(v) => Err(self.err(field, format!("must be between {lo} and {hi} (got {v})"))),
        }
    }

    pub(super) fn float_in(
        &self,
        field: &str,
        v: Option<f64>,
        lo: f64,
        hi: f64,
    ) -> Result<Option<f64>, PresetError> {
        match v {
            None => Ok(None),
            Some(v) if v.is_finite() && v >= lo && v <= hi => Ok(Some(v)),
            Some(v) => Err(self.err(field, format!("must be between {lo} and {hi} (got {v})"))),
        }
    }

    pub(super) fn bitrate(
        &self,
        field: &str,
        v: &Option<Bitrate>,
    ) -> Result<Option<u64>, PresetError> {
        let Some(v) = v else { return Ok(None) };
        let bits = match v {
            Bitrate::Number(n) => Some(*n as f64),
            Bitrate::Text(s) => parse_bitrate(s),
        };
        match bits {
            Some(b) if (1_000.0..=1_000_000_000.0).contains(&b) => Ok(Some(b.round() as u64)),
            Some(b) => Err(self.err(
                field,
                format!("bit rate {b} is out of range (1k to 1000M bits per second)"),
            )),
            None => Err(self.err(
                field,
                format!(
                    "'{}' is not a bit rate; write e.g. 128k, 2.5M or 800000",
                    display(v)
                ),
            )),
        }
    }

    pub(super) fn options(
        &self,
        field: &str,
        encoder: &str,
        options: &BTreeMap<String, toml::Value>,
    ) -> Result<BTreeMap<String, String>, PresetError> {
        let mut out = BTreeMap::new();
        for (key, value) in options {
            let value = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => (if *b { "1" } else { "0" }).to_string(),
                other => {
                    return Err(self.err(
                        &format!("{field}.{key}"),
                        format!(
                            "must be a string, number or boolean (got {})",
                            other.type_str()
                        ),
                    ));
                }
            };
            if !self.caps.encoder_has_option(encoder, key) {
                return Err(self.err(
                    &format!("{field}.{key}"),
                    format!("encoder {encoder} has no option '{key}'"),
                ));
            }
            out.insert(key.clone(), value);
        }
        Ok(out)
    }
}

fn display(v: &Bitrate) -> String {
    match v {
        Bitrate::Number(n) => n.to_string(),
        Bitrate::Text(s) => s.clone(),
    }
}

/// "128k" → 128000, "2.5M" → 2500000, "800000" → 800000.
pub(super) fn parse_bitrate(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, 'k' | 'K') => (&s[..i], 1e3),
        (i, 'm' | 'M') => (&s[..i], 1e6),
        _ => (s, 1.0),
    };
    let n: f64 = num.trim().parse().ok()?;
    (n.is_finite() && n > 0.0).then_some(n * mult)
}

#[cfg(test)]
mod tests {
    use super::parse_bitrate;

    #[test]
    fn bitrates_parse_with_suffixes() {
        assert_eq!(parse_bitrate("128k"), Some(128_000.0));
        assert_eq!(parse_bitrate("2.5M"), Some(2_500_000.0));
        assert_eq!(parse_bitrate("800000"), Some(800_000.0));
        assert_eq!(parse_bitrate("fast"), None);
        assert_eq!(parse_bitrate("-1k"), None);
        assert_eq!(parse_bitrate(""), None);
    }
}
