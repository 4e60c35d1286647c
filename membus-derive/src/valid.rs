//! Validate: every rule the model must satisfy before expansion, each violation a spanned
//! error.

use std::collections::HashMap;

use proc_macro2::Span;

use crate::ast::{EnumModel, Kind, StructModel};
use crate::ctxt::Ctxt;

/// Slot name of the fingerprint (must match `membus::typed::kv::FINGERPRINT_SLOT`).
const FINGERPRINT_SLOT: &str = "__schema";

fn check_name(cx: &mut Ctxt, name: &str, span: Span, what: &str) {
    if name.is_empty() {
        cx.push(syn::Error::new(
            span,
            format!("{what} name is empty; give it a name"),
        ));
    } else if name.contains('\0') {
        cx.push(syn::Error::new(
            span,
            format!("{what} name {name:?} contains a NUL byte, which memkv names cannot hold"),
        ));
    }
}

pub(crate) fn check_struct(cx: &mut Ctxt, m: &StructModel<'_>) {
    if m.fields.is_empty() {
        cx.error(
            m.ident,
            "#[derive(MemKv)] needs at least one field: each field is a slot",
        );
    }
    let mut seen: HashMap<&str, &syn::Ident> = HashMap::new();
    for f in &m.fields {
        let span = f.attrs.rename.as_ref().map_or(f.ident.span(), |(_, s)| *s);
        check_name(cx, &f.slot, span, "slot");
        if let Some(first) = seen.get(f.slot.as_str()) {
            cx.push(syn::Error::new(
                span,
                format!(
                    "duplicate slot name {:?}: field `{}` already uses it; give one of them another #[memkv(rename = \"...\")]",
                    f.slot, first
                ),
            ));
        } else {
            seen.insert(&f.slot, f.ident);
        }
        if !m.attrs.no_fingerprint && f.slot == FINGERPRINT_SLOT {
            cx.push(syn::Error::new(
                span,
                format!("slot name {FINGERPRINT_SLOT:?} is reserved for the schema fingerprint; rename the field or add #[memkv(no_fingerprint)] to the struct"),
            ));
        }
        if let (Some((_, span)), true) = (&f.attrs.default, m.attrs.no_fingerprint) {
            cx.push(syn::Error::new(
                *span,
                "#[memkv(default = \"...\")] serves schema evolution, which needs the schema fingerprint and description; remove #[memkv(no_fingerprint)] or the default",
            ));
        }
        match &f.kind {
            Kind::Unsupported(msg) => cx.error(f.ty, msg),
            Kind::Unbounded | Kind::Text
                if f.attrs.max_len.is_none() && m.attrs.max_len.is_none() =>
            {
                let why = if matches!(f.kind, Kind::Text) {
                    "a #[memkv(text)] field"
                } else {
                    "a String field"
                };
                cx.error(
                    f.ident,
                    format!(
                        "field `{}` is {why} and has no length bound; add #[memkv(max_len = N)] to the field, or a default #[memkv(max_len = N)] to the struct",
                        f.ident
                    ),
                );
            }
            _ => {}
        }
    }
}

pub(crate) fn check_enum(cx: &mut Ctxt, m: &EnumModel<'_>) {
    let mut seen: HashMap<&str, &syn::Ident> = HashMap::new();
    for v in &m.variants {
        check_name(cx, &v.name, v.name_span, "variant");
        if let Some(first) = seen.get(v.name.as_str()) {
            cx.push(syn::Error::new(
                v.name_span,
                format!(
                    "duplicate variant name {:?}: variant `{}` already uses it; give one of them another #[memkv(rename = \"...\")]",
                    v.name, first
                ),
            ));
        } else {
            seen.insert(&v.name, v.ident);
        }
    }
}
