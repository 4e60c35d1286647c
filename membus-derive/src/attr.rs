//! `#[memkv(...)]` attributes.

use proc_macro2::Span;
use syn::spanned::Spanned;

use crate::case::{Case, CASES};
use crate::ctxt::Ctxt;

/// Attributes on the struct or enum.
#[derive(Default)]
pub(crate) struct ContainerAttrs {
    pub(crate) rename_all: Option<Case>,
    pub(crate) max_len: Option<usize>,
    pub(crate) name_len: Option<usize>,
    pub(crate) no_fingerprint: bool,
}

/// Attributes on a field or variant.
#[derive(Default)]
pub(crate) struct FieldAttrs {
    pub(crate) rename: Option<(String, Span)>,
    pub(crate) max_len: Option<usize>,
    pub(crate) text: Option<Span>,
    /// `default = "wire text"`: the value a store made by an older schema lacks.
    pub(crate) default: Option<(String, Span)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Struct,
    Enum,
    Field,
    Variant,
}

fn usize_lit(meta: &syn::meta::ParseNestedMeta<'_>, what: &str) -> syn::Result<usize> {
    let lit: syn::LitInt = meta.value()?.parse().map_err(|e| {
        syn::Error::new(e.span(), format!("expected `{what} = <positive integer>`"))
    })?;
    let n: usize = lit.base10_parse()?;
    if n == 0 {
        return Err(syn::Error::new(
            lit.span(),
            format!("`{what}` must be at least 1"),
        ));
    }
    Ok(n)
}

fn str_lit(meta: &syn::meta::ParseNestedMeta<'_>, what: &str) -> syn::Result<syn::LitStr> {
    meta.value()?
        .parse()
        .map_err(|e| syn::Error::new(e.span(), format!("expected `{what} = \"...\"`")))
}

fn allowed(target: Target) -> &'static str {
    match target {
        Target::Struct => "rename_all, max_len, name_len, no_fingerprint",
        Target::Enum => "rename_all",
        Target::Field => "rename, max_len, text, default",
        Target::Variant => "rename",
    }
}

fn for_each_memkv(
    cx: &mut Ctxt,
    attrs: &[syn::Attribute],
    target: Target,
    mut f: impl FnMut(&str, &syn::meta::ParseNestedMeta<'_>) -> syn::Result<bool>,
) {
    for attr in attrs.iter().filter(|a| a.path().is_ident("memkv")) {
        if let syn::Meta::Path(p) = &attr.meta {
            cx.error(
                p,
                format!("expected `#[memkv(...)]` with one of: {}", allowed(target)),
            );
            continue;
        }
        let mut unknown = Vec::new();
        let res = attr.parse_nested_meta(|meta| {
            let key = meta
                .path
                .get_ident()
                .map(|i| i.to_string())
                .unwrap_or_default();
            match f(&key, &meta) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => {
                    // A bad value: report it, skip what is left of it, and go on.
                    unknown.push(e);
                    if !meta.input.is_empty() && !meta.input.peek(syn::Token![,]) {
                        meta.input.parse::<syn::Expr>()?;
                    }
                    return Ok(());
                }
            }
            // Report it, skip its value, and go on, so every unknown key is reported.
            unknown.push(meta.error(format!(
                "unknown memkv attribute `{}` here; expected one of: {}",
                if key.is_empty() { "?".to_owned() } else { key },
                allowed(target)
            )));
            if meta.input.peek(syn::Token![=]) {
                meta.value()?.parse::<syn::Expr>()?;
            } else if meta.input.peek(syn::token::Paren) {
                meta.parse_nested_meta(|inner| {
                    if inner.input.peek(syn::Token![=]) {
                        inner.value()?.parse::<syn::Expr>()?;
                    }
                    Ok(())
                })?;
            }
            Ok(())
        });
        for e in unknown {
            cx.push(e);
        }
        if let Err(e) = res {
            cx.push(e);
        }
    }
}

pub(crate) fn container(cx: &mut Ctxt, attrs: &[syn::Attribute], target: Target) -> ContainerAttrs {
    let mut out = ContainerAttrs::default();
    for_each_memkv(cx, attrs, target, |key, meta| {
        match key {
            "rename_all" => {
                let s = str_lit(meta, "rename_all")?;
                out.rename_all = Some(Case::parse(&s.value()).ok_or_else(|| {
                    syn::Error::new(
                        s.span(),
                        format!("unknown casing {:?}; expected one of {CASES}", s.value()),
                    )
                })?);
            }
            "max_len" if target == Target::Struct => {
                out.max_len = Some(usize_lit(meta, "max_len")?)
            }
            "name_len" if target == Target::Struct => {
                out.name_len = Some(usize_lit(meta, "name_len")?)
            }
            "no_fingerprint" if target == Target::Struct => out.no_fingerprint = true,
            _ => return Ok(false),
        }
        Ok(true)
    });
    out
}

pub(crate) fn field(cx: &mut Ctxt, attrs: &[syn::Attribute], target: Target) -> FieldAttrs {
    let mut out = FieldAttrs::default();
    for_each_memkv(cx, attrs, target, |key, meta| {
        match key {
            "rename" => {
                let s = str_lit(meta, "rename")?;
                out.rename = Some((s.value(), s.span()));
            }
            "max_len" if target == Target::Field => out.max_len = Some(usize_lit(meta, "max_len")?),
            "text" if target == Target::Field => out.text = Some(meta.path.span()),
            "default" if target == Target::Field => {
                let s = str_lit(meta, "default")?;
                if s.value().contains('\0') {
                    return Err(syn::Error::new(
                        s.span(),
                        "a default may not contain a NUL byte",
                    ));
                }
                out.default = Some((s.value(), s.span()));
            }
            _ => return Ok(false),
        }
        Ok(true)
    });
    out
}
