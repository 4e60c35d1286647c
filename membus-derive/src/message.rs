//! `#[derive(Message)]`: parse the input into a model, validate it, expand it.
//!
//! Every user mistake becomes a `syn::Error` spanned on the offending item; all of them are
//! collected and reported together, followed by a stub impl so no follow-on errors appear.

use std::collections::BTreeMap;

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Attribute, Data, DeriveInput, Fields, Ident, LitStr, Type};

use crate::case::{Case, CASES};

/// `ident` in the casing named `casing`; `None` for an unknown casing.
fn rename(ident: &str, casing: &str) -> Option<String> {
    Case::parse(casing).map(|c| c.apply(ident))
}

/// Collects errors; combined into one at the end.
#[derive(Default)]
struct Errors(Vec<syn::Error>);

impl Errors {
    fn push(&mut self, span: Span, msg: impl std::fmt::Display) {
        self.0.push(syn::Error::new(span, msg));
    }
    fn add(&mut self, e: syn::Error) {
        self.0.push(e);
    }
    fn finish(self) -> Result<(), syn::Error> {
        let mut it = self.0.into_iter();
        match it.next() {
            None => Ok(()),
            Some(mut first) => {
                for e in it {
                    first.combine(e);
                }
                Err(first)
            }
        }
    }
}

/// The payload of a variant or struct.
enum Shape {
    Unit,
    Tuple(Vec<Type>),
    Named(Vec<(Ident, Type)>),
}

struct Variant {
    ident: Ident,
    wire: String,
    wire_span: Span,
    shape: Shape,
}

enum Model {
    Enum(Vec<Variant>),
    /// A struct: its own wire name (used when it is a unit struct) and its shape.
    Struct(Variant),
}

/// `#[message(rename = "...")]` and `#[message(rename_all = "...")]`.
#[derive(Default)]
struct Attrs {
    rename: Option<LitStr>,
    rename_all: Option<LitStr>,
}

fn parse_attrs(attrs: &[Attribute], container: bool, errors: &mut Errors) -> Attrs {
    let mut out = Attrs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("message")) {
        let res = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename") {
                let lit: LitStr = meta.value()?.parse()?;
                if out.rename.replace(lit).is_some() {
                    return Err(meta.error("duplicate `rename`"));
                }
                Ok(())
            } else if meta.path.is_ident("rename_all") {
                if !container {
                    return Err(
                        meta.error("`rename_all` goes on the enum or struct, not on a variant")
                    );
                }
                let lit: LitStr = meta.value()?.parse()?;
                if rename("X", &lit.value()).is_none() {
                    return Err(syn::Error::new(
                        lit.span(),
                        format!("unknown casing {:?}; use one of: {CASES}", lit.value()),
                    ));
                }
                if out.rename_all.replace(lit).is_some() {
                    return Err(meta.error("duplicate `rename_all`"));
                }
                Ok(())
            } else {
                let name = meta
                    .path
                    .get_ident()
                    .map(ToString::to_string)
                    .unwrap_or_else(|| "this".into());
                Err(meta.error(format!(
                    "unknown message attribute `{name}`; expected `rename = \"...\"`{}",
                    if container {
                        " or `rename_all = \"...\"`"
                    } else {
                        ""
                    }
                )))
            }
        });
        if let Err(e) = res {
            errors.add(e);
        }
    }
    out
}

fn shape(fields: &Fields) -> Shape {
    match fields {
        Fields::Unit => Shape::Unit,
        Fields::Unnamed(f) => Shape::Tuple(f.unnamed.iter().map(|f| f.ty.clone()).collect()),
        Fields::Named(f) => Shape::Named(
            f.named
                .iter()
                .filter_map(|f| f.ident.clone().map(|i| (i, f.ty.clone())))
                .collect(),
        ),
    }
}

/// Parse and validate.
fn model(input: &DeriveInput, errors: &mut Errors) -> Option<Model> {
    let container = parse_attrs(&input.attrs, true, errors);
    let casing = container
        .rename_all
        .as_ref()
        .map(LitStr::value)
        .unwrap_or_else(|| "kebab-case".into());
    if !input.generics.params.is_empty() {
        errors.push(
            input.generics.span(),
            "generic messages are not supported: derive Message on a concrete type",
        );
    }
    let wire_of = |ident: &Ident, rename_lit: &Option<LitStr>| -> (String, Span) {
        match rename_lit {
            Some(l) => (l.value(), l.span()),
            None => (
                rename(&ident.to_string(), &casing).unwrap_or_else(|| ident.to_string()),
                ident.span(),
            ),
        }
    };
    match &input.data {
        Data::Union(u) => {
            errors.push(
                u.union_token.span(),
                "Message cannot be derived for a union: use an enum with one variant per case",
            );
            None
        }
        Data::Struct(s) => {
            if let Some(r) = &container.rename {
                if !matches!(s.fields, Fields::Unit) {
                    errors.push(
                        r.span(),
                        "`rename` on a struct only names a unit struct on the wire",
                    );
                }
            }
            let (wire, wire_span) = wire_of(&input.ident, &container.rename);
            Some(Model::Struct(Variant {
                ident: input.ident.clone(),
                wire,
                wire_span,
                shape: shape(&s.fields),
            }))
        }
        Data::Enum(e) => {
            if e.variants.is_empty() {
                errors.push(
                    input.ident.span(),
                    "an enum with no variants has no messages to send",
                );
            }
            let mut seen: BTreeMap<String, Ident> = BTreeMap::new();
            let mut variants = Vec::new();
            for v in &e.variants {
                let attrs = parse_attrs(&v.attrs, false, errors);
                let (wire, wire_span) = wire_of(&v.ident, &attrs.rename);
                if wire.is_empty() {
                    errors.push(wire_span, "a variant's wire name may not be empty");
                } else if wire.starts_with('{') || wire.trim() != wire {
                    errors.push(
                        wire_span,
                        "a variant's wire name may not start with `{` or with/end in white space",
                    );
                }
                if let Some(first) = seen.get(&wire) {
                    errors.push(wire_span, format!("variants `{first}` and `{}` both use the wire name {wire:?}; rename one", v.ident));
                } else {
                    seen.insert(wire.clone(), v.ident.clone());
                }
                variants.push(Variant {
                    ident: v.ident.clone(),
                    wire,
                    wire_span,
                    shape: shape(&v.fields),
                });
            }
            Some(Model::Enum(variants))
        }
    }
}

/// Encoding a payload shape into a `serde_json::Value` expression; `names` are the
/// bindings of the fields in order.
fn encode_value(shape: &Shape, names: &[Ident]) -> TokenStream {
    let p = quote!(::membus::__private);
    let to_value = |ty: &Type, name: &Ident| {
        quote_spanned! {ty.span()=> #p::to_json_value(#name)? }
    };
    match shape {
        Shape::Unit => quote!(#p::serde_json::Value::Null),
        Shape::Tuple(tys) if tys.len() == 1 => to_value(&tys[0], &names[0]),
        Shape::Tuple(tys) => {
            let vals = tys.iter().zip(names).map(|(t, n)| to_value(t, n));
            quote!(#p::serde_json::Value::Array(vec![#(#vals),*]))
        }
        Shape::Named(fields) => {
            let inserts = fields.iter().zip(names).map(|((ident, ty), n)| {
                let key = ident.to_string().trim_start_matches("r#").to_string();
                let v = to_value(ty, n);
                quote!(__map.insert(#key.to_string(), #v);)
            });
            quote!({
                let mut __map = #p::serde_json::Map::new();
                #(#inserts)*
                #p::serde_json::Value::Object(__map)
            })
        }
    }
}

/// Decoding `__value` (a `serde_json::Value`) into `ctor` with the given shape.
fn decode_value(shape: &Shape, ctor: &TokenStream) -> TokenStream {
    let p = quote!(::membus::__private);
    let from =
        |ty: &Type, v: TokenStream| quote_spanned! {ty.span()=> #p::from_json_value::<#ty>(#v)? };
    match shape {
        Shape::Unit => quote!({ #p::expect_null(__value)?; Ok(#ctor) }),
        Shape::Tuple(tys) if tys.len() == 1 => {
            let f = from(&tys[0], quote!(__value));
            quote!(Ok(#ctor(#f)))
        }
        Shape::Tuple(tys) => {
            let n = tys.len();
            let idx = (0..n).map(|i| format_ident!("__f{i}")).collect::<Vec<_>>();
            let vals = tys.iter().zip(&idx).map(|(t, i)| from(t, quote!(#i)));
            quote!({
                let [#(#idx),*] = #p::json_tuple::<#n>(__value)?;
                Ok(#ctor(#(#vals),*))
            })
        }
        Shape::Named(fields) => {
            let vals = fields.iter().map(|(ident, ty)| {
                let key = ident.to_string().trim_start_matches("r#").to_string();
                let v = quote_spanned! {ty.span()=> #p::json_field::<#ty>(&mut __map, #key)? };
                quote!(#ident: #v)
            });
            quote!({
                let mut __map = #p::json_object(__value)?;
                Ok(#ctor { #(#vals),* })
            })
        }
    }
}

/// Names bound to the fields in a match pattern. Each carries its field type's span, so a
/// trait-bound error on the field (e.g. not `Serialize`) points at the field.
fn bindings(shape: &Shape) -> (Vec<Ident>, TokenStream) {
    match shape {
        Shape::Unit => (vec![], quote!()),
        Shape::Tuple(tys) => {
            let names: Vec<Ident> = tys
                .iter()
                .enumerate()
                .map(|(i, t)| Ident::new(&format!("__f{i}"), t.span()))
                .collect();
            (names.clone(), quote!((#(#names),*)))
        }
        Shape::Named(fields) => {
            let names: Vec<Ident> = fields
                .iter()
                .map(|(i, t)| {
                    Ident::new(
                        &format!("__{}", i.to_string().trim_start_matches("r#")),
                        t.span(),
                    )
                })
                .collect();
            let pats: Vec<TokenStream> = fields
                .iter()
                .zip(&names)
                .map(|((i, _), n)| quote!(#i: #n))
                .collect();
            (names, quote!({ #(#pats),* }))
        }
    }
}

/// The JSON type of a message field, for the schema description: primitives by name,
/// `option<T>`, `array<T>`, and `any` for what serde encodes some other way.
fn json_type(ty: &Type) -> String {
    match ty {
        Type::Path(p) if p.qself.is_none() => {
            let Some(last) = p.path.segments.last() else {
                return "any".into();
            };
            let name = last.ident.to_string();
            let arg = match &last.arguments {
                syn::PathArguments::AngleBracketed(a) => a.args.iter().find_map(|g| match g {
                    syn::GenericArgument::Type(t) => Some(t),
                    _ => None,
                }),
                _ => None,
            };
            match (name.as_str(), arg) {
                (
                    "bool" | "u8" | "u16" | "u32" | "u64" | "i8" | "i16" | "i32" | "i64" | "f32"
                    | "f64" | "char",
                    None,
                ) => name,
                ("usize", None) => "u64".into(),
                ("isize", None) => "i64".into(),
                ("String", None) => "string".into(),
                ("Option", Some(t)) => format!("option<{}>", json_type(t)),
                ("Vec" | "VecDeque", Some(t)) => format!("array<{}>", json_type(t)),
                ("Box", Some(t)) => json_type(t),
                _ => "any".into(),
            }
        }
        Type::Reference(r) => match &*r.elem {
            Type::Path(p) if p.path.is_ident("str") => "string".into(),
            other => json_type(other),
        },
        Type::Array(a) => format!("array<{}>", json_type(&a.elem)),
        Type::Slice(a) => format!("array<{}>", json_type(&a.elem)),
        Type::Paren(p) => json_type(&p.elem),
        Type::Group(g) => json_type(&g.elem),
        _ => "any".into(),
    }
}

/// The static description of one variant (or the struct) for `Message::schema`.
fn describe_variant(v: &Variant) -> TokenStream {
    let p = quote!(::membus::__private);
    let (name, rust) = (&v.wire, v.ident.to_string());
    let field = |n: String, t: &Type| {
        let jt = json_type(t);
        let rt = quote!(#t).to_string().replace(' ', "");
        quote!(#p::MsgFieldStatic { name: #n, ty: #jt, rust: #rt })
    };
    let (shape, fields): (&str, Vec<TokenStream>) = match &v.shape {
        Shape::Unit => ("unit", vec![]),
        Shape::Tuple(tys) if tys.len() == 1 => ("newtype", vec![field(String::new(), &tys[0])]),
        Shape::Tuple(tys) => (
            "tuple",
            tys.iter().map(|t| field(String::new(), t)).collect(),
        ),
        Shape::Named(fs) => (
            "struct",
            fs.iter()
                .map(|(i, t)| field(i.to_string().trim_start_matches("r#").to_string(), t))
                .collect(),
        ),
    };
    quote!(#p::VariantStatic { name: #name, rust: #rust, shape: #shape, fields: &[#(#fields),*] })
}

fn expand(input: &DeriveInput, model: &Model) -> TokenStream {
    let p = quote!(::membus::__private);
    let ty = &input.ident;
    let type_name = ty.to_string();
    let (tagged, described): (bool, Vec<TokenStream>) = match model {
        Model::Enum(vs) => (true, vs.iter().map(describe_variant).collect()),
        Model::Struct(v) => (false, vec![describe_variant(v)]),
    };
    let (encode, decode) = match model {
        Model::Enum(variants) => {
            let enc_arms = variants.iter().map(|v| {
                let ident = &v.ident;
                let wire = &v.wire;
                let (names, pat) = bindings(&v.shape);
                match v.shape {
                    Shape::Unit => {
                        quote!(#ty::#ident => { __out.extend_from_slice(#wire.as_bytes()); Ok(()) })
                    }
                    _ => {
                        let value = encode_value(&v.shape, &names);
                        quote!(#ty::#ident #pat => #p::write_tagged(__out, #wire, #value),)
                    }
                }
            });
            let names: Vec<&String> = variants.iter().map(|v| &v.wire).collect();
            let unit_arms = variants
                .iter()
                .filter(|v| matches!(v.shape, Shape::Unit))
                .map(|v| {
                    let (ident, wire) = (&v.ident, &v.wire);
                    quote_spanned!(v.wire_span=> #wire => Ok(#ty::#ident),)
                });
            let tagged_arms = variants.iter().map(|v| {
                let (ident, wire) = (&v.ident, &v.wire);
                let dec = decode_value(&v.shape, &quote!(#ty::#ident));
                quote!(#wire => #dec,)
            });
            (
                quote! {
                    match self { #(#enc_arms)* }
                },
                quote! {
                    const __NAMES: &[&str] = &[#(#names),*];
                    match #p::parse_wire(__bytes)? {
                        #p::Wire::Unit(__name) => match __name {
                            #(#unit_arms)*
                            __other => Err(#p::unknown_variant(__other, __NAMES)),
                        },
                        #p::Wire::Tagged(__name, __value) => match __name.as_str() {
                            #(#tagged_arms)*
                            __other => Err(#p::unknown_variant(__other, __NAMES)),
                        },
                    }
                },
            )
        }
        Model::Struct(v) => {
            let (names, pat) = bindings(&v.shape);
            let wire = &v.wire;
            match v.shape {
                Shape::Unit => (
                    quote! { __out.extend_from_slice(#wire.as_bytes()); Ok(()) },
                    quote! {
                        match #p::parse_wire(__bytes)? {
                            #p::Wire::Unit(#wire) => Ok(#ty),
                            #p::Wire::Unit(__other) => Err(#p::unknown_variant(__other, &[#wire])),
                            #p::Wire::Tagged(__other, _) => Err(#p::unknown_variant(&__other, &[#wire])),
                        }
                    },
                ),
                _ => {
                    let value = encode_value(&v.shape, &names);
                    let dec = decode_value(&v.shape, &quote!(#ty));
                    (
                        quote! { let #ty #pat = self; #p::write_json(__out, #value) },
                        quote! { let __value = #p::parse_json(__bytes)?; #dec },
                    )
                }
            }
        }
    };
    quote! {
        #[automatically_derived]
        impl #p::Message for #ty {
            fn encode(&self, __out: &mut ::std::vec::Vec<u8>) -> ::std::result::Result<(), #p::CodecError> {
                #encode
            }
            fn decode(__bytes: &[u8]) -> ::std::result::Result<Self, #p::CodecError> {
                #decode
            }
            fn schema() -> #p::Option<#p::Schema> {
                const __VARIANTS: &[#p::VariantStatic] = &[#(#described),*];
                #p::Option::Some(#p::message_schema(#type_name, #tagged, __VARIANTS))
            }
        }
    }
}

/// A stub impl after errors, so the user sees only the real errors.
fn fallback(input: &DeriveInput) -> TokenStream {
    let ty = &input.ident;
    let (impl_g, ty_g, where_c) = input.generics.split_for_impl();
    quote! {
        #[automatically_derived]
        impl #impl_g ::membus::__private::Message for #ty #ty_g #where_c {
            fn encode(&self, _: &mut ::std::vec::Vec<u8>) -> ::std::result::Result<(), ::membus::__private::CodecError> {
                ::std::unreachable!()
            }
            fn decode(_: &[u8]) -> ::std::result::Result<Self, ::membus::__private::CodecError> {
                ::std::unreachable!()
            }
        }
    }
}

pub fn derive(input: &DeriveInput) -> TokenStream {
    let mut errors = Errors::default();
    let model = model(input, &mut errors);
    match (errors.finish(), model) {
        (Ok(()), Some(m)) => expand(input, &m),
        (Err(e), _) => {
            let errs = e.to_compile_error();
            let stub = if matches!(input.data, Data::Union(_)) {
                quote!()
            } else {
                fallback(input)
            };
            quote!(#errs #stub)
        }
        (Ok(()), None) => fallback(input),
    }
}
