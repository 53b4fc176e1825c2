//! Language codes as jobs and presets name them and as media files tag their tracks: ISO
//! 639-1 (`en`), 639-2/B (`fre`), 639-2/T and 639-3 (`fra`), or a BCP 47 tag (`en-US`), all
//! brought to one three-letter code so a choice and a track's tag can be compared.

use isolang::Language;

/// The code of "no language said": tracks without a tag, or tagged `und`, count as it.
pub const UNDETERMINED: &str = "und";

/// ISO 639-2/B codes (bibliographic, from English names; Matroska and older files use
/// them) and the 639-2/T codes the table knows them by. The 20 codes where B and T differ.
const BIBLIOGRAPHIC: [(&str, &str); 20] = [
    ("alb", "sqi"),
    ("arm", "hye"),
    ("baq", "eus"),
    ("bur", "mya"),
    ("chi", "zho"),
    ("cze", "ces"),
    ("dut", "nld"),
    ("fre", "fra"),
    ("geo", "kat"),
    ("ger", "deu"),
    ("gre", "ell"),
    ("ice", "isl"),
    ("mac", "mkd"),
    ("mao", "mri"),
    ("may", "msa"),
    ("per", "fas"),
    ("rum", "ron"),
    ("slo", "slk"),
    ("tib", "bod"),
    ("wel", "cym"),
];

/// The three-letter code (639-2/T, which is 639-3's for these) of a language code or tag,
/// or None when it names no language.
pub fn canonical(code: &str) -> Option<&'static str> {
    let lower = code.trim().to_ascii_lowercase();
    // A BCP 47 tag's primary subtag: `en-US` → `en`, `pt_BR` → `pt`.
    let primary = lower.split(['-', '_']).next().unwrap_or("");
    if let Some((_, t)) = BIBLIOGRAPHIC.iter().find(|(b, _)| *b == primary) {
        return Some(t);
    }
    let language = match primary.len() {
        2 => Language::from_639_1(primary),
        3 => Language::from_639_3(primary),
        _ => None,
    }?;
    Some(language.to_639_3())
}

/// A track's tag as a canonical code: untagged, `und` or a tag that names no language all
/// count as undetermined.
pub fn of_track(tag: Option<&str>) -> &'static str {
    tag.and_then(canonical).unwrap_or(UNDETERMINED)
}

/// A language's English name ("English", "French"), for players' menus; the code itself
/// when the table has none.
pub fn name(code: &str) -> String {
    match code {
        UNDETERMINED => "Undetermined".into(),
        _ => Language::from_639_3(code).map_or_else(|| code.to_string(), |l| l.to_name().into()),
    }
}

/// A list of wanted languages, each brought to its canonical code; the first that names no
/// language, or one named twice, is the error (naming the field `at`).
pub fn choice(at: &str, codes: &[String]) -> Result<Vec<String>, String> {
    if codes.is_empty() {
        return Err(format!(
            "{at}: name at least one language (ISO 639 codes such as \"eng\", or \"und\" for \
             tracks without one)"
        ));
    }
    let mut wanted: Vec<String> = Vec::with_capacity(codes.len());
    for (i, code) in codes.iter().enumerate() {
        let Some(c) = canonical(code) else {
            return Err(format!(
                "{at}[{i}]: '{code}' is not an ISO 639 language code (such as \"eng\", \
                 \"fra\", \"en\", or \"und\" for tracks without one)"
            ));
        };
        if wanted.iter().any(|w| w == c) {
            return Err(format!("{at}[{i}]: '{code}' names {c} a second time"));
        }
        wanted.push(c.to_string());
    }
    Ok(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_code_comes_to_one() {
        for code in ["eng", "en", "EN", "en-US", "en_GB"] {
            assert_eq!(canonical(code), Some("eng"), "{code}");
        }
        for code in ["fre", "fra", "fr"] {
            assert_eq!(canonical(code), Some("fra"), "{code}");
        }
        assert_eq!(canonical("ger"), Some("deu"));
        assert_eq!(canonical("und"), Some("und"));
        assert_eq!(canonical("xx"), None);
        assert_eq!(canonical("english"), None);
        assert_eq!(canonical(""), None);
    }

    #[test]
    fn untagged_tracks_are_undetermined() {
        assert_eq!(of_track(None), "und");
        assert_eq!(of_track(Some("und")), "und");
        assert_eq!(of_track(Some("qqq1")), "und");
        assert_eq!(of_track(Some("spa")), "spa");
    }

    #[test]
    fn a_choice_names_its_mistakes() {
        assert_eq!(
            choice("audio.languages", &["en".into(), "und".into()]).unwrap(),
            vec!["eng", "und"]
        );
        let e = choice("audio.languages", &["eng".into(), "klingonish".into()]).unwrap_err();
        assert!(e.starts_with("audio.languages[1]: 'klingonish'"), "{e}");
        let e = choice("audio.languages", &["eng".into(), "en".into()]).unwrap_err();
        assert!(e.contains("second time"), "{e}");
        assert!(choice("audio.languages", &[]).is_err());
    }

    #[test]
    fn names_are_english() {
        assert_eq!(name("eng"), "English");
        assert_eq!(name("fra"), "French");
        assert_eq!(name("und"), "Undetermined");
    }
}
