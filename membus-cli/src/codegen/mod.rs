//! `membus codegen python|cpp`: typed accessors for other languages, generated from a
//! share's schema description (or a JSON file the derive exported).

pub mod cpp;
pub mod python;

use membus::typed::Schema;

/// A JSON string literal: valid in Python and, for ASCII-escaped text, in C++.
pub(crate) fn lit(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// Loads a schema from `membus schema --json` output or a derive's `schema_json()`.
pub fn load(name: Option<&str>, from: Option<&std::path::Path>) -> Result<Schema, String> {
    match (name, from) {
        (_, Some(path)) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Schema::from_json(&text).map_err(|e| format!("{}: {}", path.display(), e.detail()))
        }
        (Some(n), None) => {
            let share = membus::ShareName::new(n).map_err(|e| e.to_string())?;
            match membus::typed::schema::read(share.as_str()) {
                Ok(Some(s)) => Ok(s),
                Ok(None) => Err(format!(
                    "share {}: it carries no schema description (it was not created through a \
                     derived type, or its creator is an older membus); use --from FILE.json \
                     with the type's `schema_json()`",
                    share.as_str()
                )),
                Err(e) => Err(e.to_string()),
            }
        }
        (None, None) => Err("give a share NAME or --from FILE.json".into()),
    }
}
