//! Renaming identifiers for the wire: the casings `rename_all` accepts.

/// The casings `rename_all` accepts, by their serde-style names.
pub const CASINGS: &[&str] = &[
    "kebab-case",
    "snake_case",
    "SCREAMING_SNAKE_CASE",
    "SCREAMING-KEBAB-CASE",
    "camelCase",
    "PascalCase",
    "lowercase",
    "UPPERCASE",
];

/// Splits a Rust identifier (`PanLeft`, `pan_left`, `HTTPRequest2`) into lowercase words.
fn words(ident: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let chars: Vec<char> = ident.trim_start_matches("r#").chars().collect();
    let mut cur = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c == '_' {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        let prev = i.checked_sub(1).map(|j| chars[j]);
        let next = chars.get(i + 1).copied();
        let boundary = c.is_uppercase()
            && !cur.is_empty()
            && (prev.is_some_and(|p| p.is_lowercase() || p.is_ascii_digit())
                || (prev.is_some_and(char::is_uppercase) && next.is_some_and(char::is_lowercase)));
        if boundary {
            out.push(std::mem::take(&mut cur));
        }
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn capitalised(w: &str) -> String {
    let mut c = w.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// `ident` in `casing` (one of [`CASINGS`]); `None` for an unknown casing.
pub fn rename(ident: &str, casing: &str) -> Option<String> {
    let w = words(ident);
    Some(match casing {
        "kebab-case" => w.join("-"),
        "snake_case" => w.join("_"),
        "SCREAMING_SNAKE_CASE" => w.join("_").to_uppercase(),
        "SCREAMING-KEBAB-CASE" => w.join("-").to_uppercase(),
        "camelCase" => w
            .iter()
            .enumerate()
            .map(|(i, x)| if i == 0 { x.clone() } else { capitalised(x) })
            .collect(),
        "PascalCase" => w.iter().map(|x| capitalised(x)).collect(),
        "lowercase" => w.concat(),
        "UPPERCASE" => w.concat().to_uppercase(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::rename;

    #[test]
    fn casings() {
        assert_eq!(rename("PanLeft", "kebab-case").unwrap(), "pan-left");
        assert_eq!(
            rename("HTTPRequest2", "snake_case").unwrap(),
            "http_request2"
        );
        assert_eq!(rename("pan_left", "PascalCase").unwrap(), "PanLeft");
        assert_eq!(rename("PanLeft", "camelCase").unwrap(), "panLeft");
        assert_eq!(
            rename("PanLeft", "SCREAMING_SNAKE_CASE").unwrap(),
            "PAN_LEFT"
        );
        assert_eq!(rename("ZoomIn", "lowercase").unwrap(), "zoomin");
        assert!(rename("X", "Title Case").is_none());
    }
}
