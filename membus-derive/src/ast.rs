//! Parse: `syn::DeriveInput` → the model the validator and the expander work on.

use proc_macro2::Span;
use quote::ToTokens;

use crate::attr::{self, ContainerAttrs, FieldAttrs, Target};
use crate::ctxt::Ctxt;

/// How a field's type is stored.
pub(crate) enum Kind {
    /// Through `KvValue` (integers, floats, bool, char, MemKvEnum enums, Option of those).
    Native,
    /// Through `KvValue`, but unbounded (String, Option<String>): needs a max_len.
    Unbounded,
    /// Through `FromStr + Display` (`#[memkv(text)]`): needs a max_len.
    Text,
    /// Not storable; the message says what to do.
    Unsupported(String),
}

pub(crate) struct FieldModel<'a> {
    pub(crate) ident: &'a syn::Ident,
    pub(crate) ty: &'a syn::Type,
    pub(crate) attrs: FieldAttrs,
    pub(crate) slot: String,
    pub(crate) kind: Kind,
}

pub(crate) struct StructModel<'a> {
    pub(crate) ident: &'a syn::Ident,
    pub(crate) vis: &'a syn::Visibility,
    pub(crate) attrs: ContainerAttrs,
    pub(crate) fields: Vec<FieldModel<'a>>,
}

pub(crate) struct VariantModel<'a> {
    pub(crate) ident: &'a syn::Ident,
    pub(crate) name: String,
    pub(crate) name_span: Span,
}

pub(crate) struct EnumModel<'a> {
    pub(crate) ident: &'a syn::Ident,
    pub(crate) variants: Vec<VariantModel<'a>>,
}

fn reject_generics(cx: &mut Ctxt, input: &syn::DeriveInput, derive: &str) {
    if !input.generics.params.is_empty() {
        cx.error(
            &input.generics,
            format!("#[derive({derive})] does not support generic parameters; use a concrete type"),
        );
    }
}

pub(crate) fn parse_struct<'a>(
    cx: &mut Ctxt,
    input: &'a syn::DeriveInput,
) -> Option<StructModel<'a>> {
    reject_generics(cx, input, "MemKv");
    let named = match &input.data {
        syn::Data::Struct(s) => {
            match &s.fields {
                syn::Fields::Named(n) => n,
                syn::Fields::Unnamed(u) => {
                    cx.error(u, "#[derive(MemKv)] needs a struct with named fields (each field is a named slot); this is a tuple struct");
                    return None;
                }
                syn::Fields::Unit => {
                    cx.error(&input.ident, "#[derive(MemKv)] needs a struct with named fields; this unit struct has none");
                    return None;
                }
            }
        }
        syn::Data::Enum(e) => {
            cx.error(e.enum_token, "#[derive(MemKv)] works on structs with named fields; for an enum stored in a slot use #[derive(MemKvEnum)]");
            return None;
        }
        syn::Data::Union(u) => {
            cx.error(
                u.union_token,
                "#[derive(MemKv)] works on structs with named fields, not unions",
            );
            return None;
        }
    };
    let attrs = attr::container(cx, &input.attrs, Target::Struct);
    let mut fields = Vec::new();
    for f in &named.named {
        let Some(ident) = &f.ident else { continue };
        let fattrs = attr::field(cx, &f.attrs, Target::Field);
        let slot = match (&fattrs.rename, attrs.rename_all) {
            (Some((name, _)), _) => name.clone(),
            (None, Some(case)) => case.apply(&ident.to_string()),
            (None, None) => ident.to_string().trim_start_matches("r#").to_owned(),
        };
        let kind = if fattrs.text.is_some() {
            Kind::Text
        } else {
            classify(&f.ty)
        };
        fields.push(FieldModel {
            ident,
            ty: &f.ty,
            attrs: fattrs,
            slot,
            kind,
        });
    }
    Some(StructModel {
        ident: &input.ident,
        vis: &input.vis,
        attrs,
        fields,
    })
}

const USE_TEXT: &str =
    "or implement FromStr + Display and mark the field #[memkv(text, max_len = N)]";

/// Sorts a field type syntactically. Paths we do not recognise are `Native`: the
/// `KvValue` bound then reports, on the type, if they are not storable.
fn classify(ty: &syn::Type) -> Kind {
    match ty {
        syn::Type::Path(p) if p.qself.is_none() => {
            let Some(last) = p.path.segments.last() else {
                return Kind::Native;
            };
            let name = last.ident.to_string();
            let args: Vec<&syn::Type> = match &last.arguments {
                syn::PathArguments::AngleBracketed(a) => a
                    .args
                    .iter()
                    .filter_map(|g| match g {
                        syn::GenericArgument::Type(t) => Some(t),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            match name.as_str() {
                "String" if args.is_empty() => Kind::Unbounded,
                "Option" if args.len() == 1 => match args.first().map(|t| classify(t)) {
                    Some(Kind::Unsupported(m)) => Kind::Unsupported(m),
                    Some(Kind::Native) if is_option(args.first().copied()) => Kind::Unsupported(
                        "nested Option cannot be stored: an empty slot cannot tell None from Some(None)".into(),
                    ),
                    Some(k) => k,
                    None => Kind::Native,
                },
                "Vec" | "VecDeque" | "HashMap" | "BTreeMap" | "HashSet" | "BTreeSet" | "Box" | "Rc"
                | "Arc" | "Cow" | "Cell" | "RefCell" | "PhantomData" => Kind::Unsupported(format!(
                    "`{}` cannot be stored in a memkv slot: a slot holds one scalar as text; use one field per value, {USE_TEXT}",
                    ty.to_token_stream().to_string().replace(' ', "")
                )),
                "str" => Kind::Unsupported("`str` is unsized; use `String` with #[memkv(max_len = N)]".into()),
                _ => Kind::Native,
            }
        }
        syn::Type::Reference(_) => Kind::Unsupported(
            "references cannot be stored in a memkv slot; use an owned type such as `String` with #[memkv(max_len = N)]".into(),
        ),
        syn::Type::Paren(p) => classify(&p.elem),
        syn::Type::Group(g) => classify(&g.elem),
        other => Kind::Unsupported(format!(
            "`{}` cannot be stored in a memkv slot: a slot holds one scalar as text; use one field per value, {USE_TEXT}",
            other.to_token_stream().to_string().replace(' ', "")
        )),
    }
}

fn is_option(ty: Option<&syn::Type>) -> bool {
    matches!(ty, Some(syn::Type::Path(p)) if p.path.segments.last().is_some_and(|s| s.ident == "Option"))
}

pub(crate) fn parse_enum<'a>(cx: &mut Ctxt, input: &'a syn::DeriveInput) -> Option<EnumModel<'a>> {
    reject_generics(cx, input, "MemKvEnum");
    let data = match &input.data {
        syn::Data::Enum(e) => e,
        syn::Data::Struct(s) => {
            cx.error(s.struct_token, "#[derive(MemKvEnum)] works on enums of unit variants; for a struct of slots use #[derive(MemKv)]");
            return None;
        }
        syn::Data::Union(u) => {
            cx.error(
                u.union_token,
                "#[derive(MemKvEnum)] works on enums of unit variants, not unions",
            );
            return None;
        }
    };
    let attrs = attr::container(cx, &input.attrs, Target::Enum);
    if data.variants.is_empty() {
        cx.error(
            &input.ident,
            "#[derive(MemKvEnum)] needs at least one variant",
        );
    }
    let mut variants = Vec::new();
    for v in &data.variants {
        let vattrs = attr::field(cx, &v.attrs, Target::Variant);
        if !matches!(v.fields, syn::Fields::Unit) {
            cx.error(&v.fields, format!(
                "variant `{}` has fields; #[derive(MemKvEnum)] stores variants by name, so every variant must be a unit variant",
                v.ident
            ));
        }
        let (name, name_span) = match (vattrs.rename, attrs.rename_all) {
            (Some((n, span)), _) => (n, span),
            (None, Some(case)) => (case.apply(&v.ident.to_string()), v.ident.span()),
            (None, None) => (v.ident.to_string(), v.ident.span()),
        };
        variants.push(VariantModel {
            ident: &v.ident,
            name,
            name_span,
        });
    }
    Some(EnumModel {
        ident: &input.ident,
        variants,
    })
}
