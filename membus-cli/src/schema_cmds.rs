//! Typed shares in the CLI: `membus schema`, `membus codegen`, and the schema lookups that
//! `ls`, `info`, `kv set`, `send` and `tail` use.

use std::path::Path;

use membus::typed::schema::{self, SchemaKind};
use membus::typed::Schema;

type CmdResult = Result<(), Box<dyn std::error::Error>>;

/// What is known about a share's type: its description, or only a fingerprint slot.
pub enum Typed {
    /// Created through a derived type: the full description.
    Described(Schema),
    /// A memkv with a `__schema` slot (this fingerprint) but no description.
    FingerprintOnly(String),
    /// The description exists but cannot be read.
    Unreadable(String),
    /// Not typed.
    Untyped,
}

/// The schema facts of share `name` (never fails: problems become `Unreadable`).
pub fn typed_of(name: &str, kv_slots: Option<(&[String], Option<String>)>) -> Typed {
    match schema::read(name) {
        Ok(Some(s)) => Typed::Described(s),
        Err(e) => Typed::Unreadable(e.detail().to_owned()),
        Ok(None) => match kv_slots {
            Some((names, fp))
                if names.last().map(String::as_str)
                    == Some(membus::typed::kv::FINGERPRINT_SLOT) =>
            {
                Typed::FingerprintOnly(fp.unwrap_or_default())
            }
            _ => Typed::Untyped,
        },
    }
}

/// The typed facts of a share for `ls`/`info`: ("typed" text, type name) or None.
///
/// Only the description is read: attaching to the share here could leave objects behind
/// (a waiter registry), which listing must not do.
pub fn label(name: &str) -> Option<(String, Option<String>)> {
    match typed_of(name, None) {
        Typed::Described(s) => Some((
            match s.kind {
                SchemaKind::Memkv => format!(
                    "yes: {} (memkv, {} fields, fingerprint {})",
                    s.type_name,
                    s.fields.len(),
                    s.fingerprint.as_deref().unwrap_or("-")
                ),
                SchemaKind::Message => format!(
                    "yes: {} (message, {} variant{})",
                    s.type_name,
                    s.message.as_ref().map_or(0, |m| m.variants.len()),
                    if s.message.as_ref().map_or(0, |m| m.variants.len()) == 1 {
                        ""
                    } else {
                        "s"
                    }
                ),
            },
            Some(s.type_name),
        )),
        Typed::FingerprintOnly(fp) => Some((
            format!("yes: fingerprint {fp} only (no schema description)"),
            None,
        )),
        Typed::Unreadable(e) => {
            Some((format!("unknown: schema description unreadable: {e}"), None))
        }
        Typed::Untyped => None,
    }
}

/// A memkv's slot names and its last slot's value, if `name` is a memkv.
fn kv_slots(name: &str) -> Option<(Vec<String>, Option<String>)> {
    let kind = crate::probe::probe(name).ok()?.kind;
    if kind != crate::probe::Kind::MemKv {
        return None;
    }
    let kv = membus::memkv::MemKv::attach(name).ok()?;
    let names = kv.slot_names().ok()?;
    let fp = names
        .len()
        .checked_sub(1)
        .and_then(|i| kv.get(i).ok())
        .map(|v| String::from_utf8_lossy(&v.value).into_owned());
    Some((names, fp))
}

/// `membus schema NAME [--json]`.
pub fn schema_cmd(name: &str, as_json: bool) -> CmdResult {
    let share = membus::ShareName::new(name)?;
    let name = share.as_str();
    if !Path::new(&crate::probe::path_of(name)).exists() {
        return Err(format!("share {name}: no such share (`membus ls` lists the shares)").into());
    }
    let slots = kv_slots(name);
    match typed_of(name, slots.as_ref().map(|(n, f)| (n.as_slice(), f.clone()))) {
        Typed::Described(s) => {
            if as_json {
                outln!("{}", s.to_json())?;
            } else {
                print_schema(name, &s)?;
            }
            Ok(())
        }
        Typed::FingerprintOnly(fp) => Err(format!(
            "share {name}: typed memkv (fingerprint {fp}) without a schema description (made by \
             an older membus, or its description was removed)"
        )
        .into()),
        Typed::Unreadable(e) => Err(format!("share {name}: schema description: {e}").into()),
        Typed::Untyped => Err(format!(
            "share {name}: not a typed share (no schema description: it was not created through \
             a #[derive(MemKv)] or #[derive(Message)] type)"
        )
        .into()),
    }
}

fn print_schema(name: &str, s: &Schema) -> std::io::Result<()> {
    match s.kind {
        SchemaKind::Memkv => {
            outln!(
                "share {name}: memkv store of {} (fingerprint {})",
                s.type_name,
                s.fingerprint.as_deref().unwrap_or("-")
            )?;
            let rows: Vec<[String; 5]> = s
                .fields
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    [
                        i.to_string(),
                        f.name.clone(),
                        f.slot.clone(),
                        f.rust.clone(),
                        {
                            let mut a = f.allowed();
                            if let Some(d) = &f.default {
                                a.push_str(&format!("; default {d:?}"));
                            }
                            a
                        },
                    ]
                })
                .collect();
            crate::cmds::print_table(&["#", "FIELD", "SLOT", "TYPE", "ACCEPTS"], &rows)
        }
        SchemaKind::Message => {
            let Some(m) = &s.message else {
                return Ok(());
            };
            outln!(
                "share {name}: {} messages of {}",
                if m.tagged { "enum" } else { "struct" },
                s.type_name
            )?;
            for v in &m.variants {
                let wire = match (m.tagged, v.shape.as_str()) {
                    (_, "unit") => v.name.clone(),
                    (true, "newtype") => format!("{{\"{}\":<{}>}}", v.name, v.fields[0].rust),
                    (true, "tuple") => format!("{{\"{}\":[{}]}}", v.name, v.payload_hint()),
                    (true, _) => format!("{{\"{}\":{{{}}}}}", v.name, v.payload_hint()),
                    (false, "newtype") => format!("<{}>", v.fields[0].rust),
                    (false, "tuple") => format!("[{}]", v.payload_hint()),
                    (false, _) => format!("{{{}}}", v.payload_hint()),
                };
                outln!("  {:<12} {wire}", v.rust)?;
            }
            Ok(())
        }
    }
}

/// `membus codegen LANG NAME|--from FILE [-o OUT]`.
pub fn codegen(
    lang: &str,
    name: Option<&str>,
    from: Option<&Path>,
    out: Option<&Path>,
) -> CmdResult {
    let s = crate::codegen::load(name, from)?;
    let text = match lang {
        "python" => crate::codegen::python::generate(&s),
        "cpp" => crate::codegen::cpp::generate(&s),
        other => return Err(format!("unknown language {other:?} (python or cpp)").into()),
    };
    match out {
        Some(p) => std::fs::write(p, text).map_err(|e| format!("{}: {e}", p.display()))?,
        None => out!("{text}")?,
    }
    Ok(())
}

/// The description of a memkv share when it has one (for `kv set` and `tail`).
pub fn kv_schema(name: &str) -> Result<Option<Schema>, String> {
    match schema::read(name) {
        Ok(Some(s)) if s.kind == SchemaKind::Memkv => Ok(Some(s)),
        Ok(_) => Ok(None),
        Err(e) => Err(format!(
            "share {name}: its schema description cannot be read ({}); use --raw to write without checks",
            e.detail()
        )),
    }
}

/// The message description of a channel when it has one (for `send` and `tail`).
pub fn message_schema(name: &str) -> Result<Option<Schema>, String> {
    match schema::read(name) {
        Ok(Some(s)) if s.kind == SchemaKind::Message => Ok(Some(s)),
        Ok(_) => Ok(None),
        Err(e) => Err(format!(
            "share {name}: its schema description cannot be read ({}); use --raw to send without checks",
            e.detail()
        )),
    }
}

/// Checks `kv set` pairs against a described store: each key is a slot (or field) name and
/// each value must parse as that field's type.
pub fn check_kv_set(name: &str, s: &Schema, batch: &[(&str, &[u8])]) -> Result<(), String> {
    for (key, value) in batch {
        if *key == membus::typed::kv::FINGERPRINT_SLOT {
            return Err(format!(
                "share {name}: `{key}` holds the store's schema fingerprint; writing it would \
                 make typed peers refuse the store (use --raw to write it anyway)"
            ));
        }
        let Some(f) = s.fields.iter().find(|f| f.slot == *key) else {
            let slots: Vec<&str> = s.fields.iter().map(|f| f.slot.as_str()).collect();
            return Err(format!(
                "share {name}: {} has no slot {key:?}; its slots are {}",
                s.type_name,
                slots.join(", ")
            ));
        };
        let text = std::str::from_utf8(value)
            .map_err(|_| format!("share {name}: field `{}`: the value is not UTF-8", f.name))?;
        f.check_text(text).map_err(|e| {
            format!("share {name}: {e}; nothing was written (use --raw to write it anyway)")
        })?;
    }
    Ok(())
}

/// Checks one message against a described channel; `Ok` with its typed rendering.
pub fn check_message(name: &str, s: &Schema, msg: &[u8]) -> Result<String, String> {
    let Some(m) = &s.message else {
        return Ok(String::new());
    };
    m.check(msg).map_err(|e| {
        format!(
            "share {name}: {} is not a {} message: {e}; nothing was sent (use --raw to send it anyway)",
            crate::cmds::render(msg, false),
            s.type_name
        )
    })
}
