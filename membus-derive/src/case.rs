//! `rename_all` casings.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Case {
    Lower,
    Upper,
    Camel,
    Pascal,
    Snake,
    ScreamingSnake,
    Kebab,
    ScreamingKebab,
}

pub(crate) const CASES: &str =
    "\"lowercase\", \"UPPERCASE\", \"camelCase\", \"PascalCase\", \"snake_case\", \"SCREAMING_SNAKE_CASE\", \"kebab-case\", \"SCREAMING-KEBAB-CASE\"";

impl Case {
    pub(crate) fn parse(s: &str) -> Option<Case> {
        Some(match s {
            "lowercase" => Case::Lower,
            "UPPERCASE" => Case::Upper,
            "camelCase" => Case::Camel,
            "PascalCase" => Case::Pascal,
            "snake_case" => Case::Snake,
            "SCREAMING_SNAKE_CASE" => Case::ScreamingSnake,
            "kebab-case" => Case::Kebab,
            "SCREAMING-KEBAB-CASE" => Case::ScreamingKebab,
            _ => return None,
        })
    }

    /// Applies the casing to a Rust identifier (snake_case field or PascalCase variant).
    pub(crate) fn apply(self, ident: &str) -> String {
        let words = words(ident);
        let cap = |w: &str| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect::<String>(),
                None => String::new(),
            }
        };
        match self {
            Case::Lower => words.concat(),
            Case::Upper => words.concat().to_uppercase(),
            Case::Pascal => words.iter().map(|w| cap(w)).collect(),
            Case::Camel => {
                let mut out = String::new();
                for (i, w) in words.iter().enumerate() {
                    if i == 0 {
                        out.push_str(w);
                    } else {
                        out.push_str(&cap(w));
                    }
                }
                out
            }
            Case::Snake => words.join("_"),
            Case::ScreamingSnake => words.join("_").to_uppercase(),
            Case::Kebab => words.join("-"),
            Case::ScreamingKebab => words.join("-").to_uppercase(),
        }
    }
}

/// Lower-case words of a snake_case or PascalCase identifier.
pub(crate) fn words(ident: &str) -> Vec<String> {
    let ident = ident.strip_prefix("r#").unwrap_or(ident);
    let mut out: Vec<String> = Vec::new();
    for part in ident.split('_').filter(|p| !p.is_empty()) {
        let mut cur = String::new();
        for c in part.chars() {
            if c.is_uppercase() && !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            cur.extend(c.to_lowercase());
        }
        if !cur.is_empty() {
            out.push(cur);
        }
    }
    out
}

/// `exposure_time` → `ExposureTime`.
pub(crate) fn pascal(ident: &str) -> String {
    Case::Pascal.apply(ident)
}

/// `exposure_time` → `EXPOSURE_TIME`.
pub(crate) fn screaming(ident: &str) -> String {
    Case::ScreamingSnake.apply(ident)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casings() {
        let f = "exposure_time_us";
        let got: Vec<String> = [
            Case::Lower,
            Case::Upper,
            Case::Camel,
            Case::Pascal,
            Case::Snake,
            Case::ScreamingSnake,
            Case::Kebab,
            Case::ScreamingKebab,
        ]
        .iter()
        .map(|c| c.apply(f))
        .collect();
        assert_eq!(
            got,
            [
                "exposuretimeus",
                "EXPOSURETIMEUS",
                "exposureTimeUs",
                "ExposureTimeUs",
                "exposure_time_us",
                "EXPOSURE_TIME_US",
                "exposure-time-us",
                "EXPOSURE-TIME-US"
            ]
        );
        assert_eq!(Case::Snake.apply("FullAuto"), "full_auto");
        assert_eq!(Case::Kebab.apply("r#type"), "type");
        assert_eq!(pascal("gain_db"), "GainDb");
        assert_eq!(screaming("gain_db"), "GAIN_DB");
        assert_eq!(Case::parse("Title Case"), None);
    }
}
