//! Expand: the model → the trait impls, field keys and change enum. Generated code names
//! only `::membus::__private::*`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;

use crate::ast::{self, Kind, StructModel};
use crate::case::{pascal, screaming};
use crate::ctxt::Ctxt;
use crate::valid;

/// `#[derive(MemKv)]`.
pub(crate) fn mem_kv(input: &syn::DeriveInput) -> TokenStream {
    let mut cx = Ctxt::new();
    let model = ast::parse_struct(&mut cx, input);
    if let Some(m) = &model {
        valid::check_struct(&mut cx, m);
    }
    match (cx.finish(), model) {
        (Ok(()), Some(m)) => expand_struct(&m),
        (Err(e), _) => {
            let mut out = e.into_compile_error();
            out.extend(stub_schema(input));
            out.extend(stub_keys(input));
            out
        }
        (Ok(()), None) => {
            let mut out = stub_schema(input);
            out.extend(stub_keys(input));
            out
        }
    }
}

/// On error: the key constants the user's code names (`Settings::RATE_HZ`), with stub
/// codecs, so the only errors reported are the real ones (thiserror's fallback pattern).
/// Emitted for non-generic structs with named fields; nothing else has keys to name.
fn stub_keys(input: &syn::DeriveInput) -> TokenStream {
    let syn::Data::Struct(data) = &input.data else {
        return TokenStream::new();
    };
    let syn::Fields::Named(named) = &data.fields else {
        return TokenStream::new();
    };
    if !input.generics.params.is_empty() {
        return TokenStream::new();
    }
    let ident = &input.ident;
    let consts = named.named.iter().enumerate().filter_map(|(i, f)| {
        let fid = f.ident.as_ref()?;
        let fname = fid.to_string().trim_start_matches("r#").to_owned();
        let key = format_ident!("{}", screaming(&fname), span = fid.span());
        let ty = &f.ty;
        Some(quote! {
            #[allow(dead_code)]
            pub const #key: ::membus::__private::Field<#ident, #ty> =
                ::membus::__private::Field::__new(
                    #i,
                    ::membus::__private::stub_encode::<#ty>,
                    ::membus::__private::stub_decode::<#ty>,
                );
        })
    });
    quote! {
        #[automatically_derived]
        #[allow(missing_docs)]
        impl #ident {
            #(#consts)*
        }
    }
}

/// On error: an impl with no slots, so uses of the type do not add follow-on errors.
fn stub_schema(input: &syn::DeriveInput) -> TokenStream {
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    quote! {
        #[automatically_derived]
        impl #impl_generics ::membus::__private::KvSchema for #ident #ty_generics #where_clause {
            type Change = ();
            const TYPE_NAME: &'static str = "";
            const SLOTS: &'static [::membus::__private::SlotDef] = &[];
            const FINGERPRINT: bool = false;
            const NAME_LEN: usize = 0;
            fn encode_slots(&self) -> ::membus::__private::Vec<::membus::__private::String> {
                ::membus::__private::Vec::new()
            }
            fn decode_slots(_: &[&str]) -> ::membus::__private::Result<Self, ::membus::__private::Vec<::membus::__private::FieldError>> {
                ::membus::__private::Result::Err(::membus::__private::Vec::new())
            }
            fn decode_change(_: usize, _: &str) -> ::membus::__private::Result<(), ::membus::__private::FieldError> {
                ::membus::__private::Result::Ok(())
            }
        }
    }
}

fn codec(f: &ast::FieldModel<'_>) -> (TokenStream, TokenStream) {
    let ty = f.ty;
    let span = ty.span();
    match f.kind {
        Kind::Text => (
            quote_spanned!(span=> ::membus::__private::text_encode::<#ty>),
            quote_spanned!(span=> ::membus::__private::text_decode::<#ty>),
        ),
        _ => (
            quote_spanned!(span=> <#ty as ::membus::__private::KvValue>::encode),
            quote_spanned!(span=> <#ty as ::membus::__private::KvValue>::decode),
        ),
    }
}

fn expand_struct(m: &StructModel<'_>) -> TokenStream {
    let ident = m.ident;
    let vis_change = format_ident!("{}Change", ident);
    let n = m.fields.len();
    let mut consts = Vec::new();
    let mut slots = Vec::new();
    let mut encodes = Vec::new();
    let mut decodes = Vec::new();
    let mut names = Vec::new();
    let mut variants = Vec::new();
    let mut change_arms = Vec::new();
    let mut debug_arms = Vec::new();
    for (i, f) in m.fields.iter().enumerate() {
        let fid = f.ident;
        let fname = fid.to_string().trim_start_matches("r#").to_owned();
        let ty = f.ty;
        let slot = &f.slot;
        let ty_text = ty.to_token_stream().to_string().replace(' ', "");
        let (enc, dec) = codec(f);
        let key = format_ident!("{}", screaming(&fname), span = fid.span());
        let variant = format_ident!("{}", pascal(&fname), span = fid.span());
        let doc = format!("Typed key of field `{fname}` (slot {slot:?}).");
        consts.push(quote! {
            #[doc = #doc]
            pub const #key: ::membus::__private::Field<#ident, #ty> =
                ::membus::__private::Field::__new(#i, #enc, #dec);
        });
        let max_len = match (f.attrs.max_len.or(m.attrs.max_len), &f.kind) {
            (Some(a), Kind::Text) => quote!(#a),
            (None, Kind::Text) => quote!(0usize),
            (Some(a), _) if f.attrs.max_len.is_some() || matches!(f.kind, Kind::Unbounded) => {
                quote_spanned! {ty.span()=>
                    ::membus::__private::max_len(<#ty as ::membus::__private::KvValue>::MAX_LEN, ::membus::__private::Option::Some(#a))
                }
            }
            _ => quote_spanned! {ty.span()=>
                ::membus::__private::max_len(<#ty as ::membus::__private::KvValue>::MAX_LEN, ::membus::__private::Option::None)
            },
        };
        let value = match f.kind {
            Kind::Text => quote!(::membus::__private::ValueDesc::plain("text")),
            _ => quote_spanned!(ty.span()=> <#ty as ::membus::__private::KvValue>::DESC),
        };
        let default = match &f.attrs.default {
            Some((d, _)) => quote!(::membus::__private::Option::Some(#d)),
            None => quote!(::membus::__private::Option::None),
        };
        slots.push(quote! {
            ::membus::__private::SlotDef {
                field: #fname, name: #slot, ty: #ty_text, max_len: #max_len,
                value: #value, default: #default,
            }
        });
        encodes.push(quote! {
            {
                let mut s = ::membus::__private::String::new();
                (#enc)(&self.#fid, &mut s);
                v.push(s);
            }
        });
        let local = format_ident!("__f_{}", i);
        decodes.push(quote! {
            let #local = {
                let raw = raw.get(#i).copied().unwrap_or("");
                match (#dec)(raw) {
                    ::membus::__private::Result::Ok(v) => ::membus::__private::Option::Some(v),
                    ::membus::__private::Result::Err(reason) => {
                        errors.push(::membus::__private::FieldError {
                            field: #fname,
                            raw: ::membus::__private::String::from(raw),
                            reason,
                        });
                        ::membus::__private::Option::None
                    }
                }
            };
        });
        names.push((fid, local));
        let vdoc = format!("Field `{fname}` changed.");
        variants.push(quote! { #[doc = #vdoc] #variant(#ty) });
        let vname = variant.to_string();
        debug_arms.push(quote! {
            #vis_change::#variant(v) => {
                (#enc)(v, &mut text);
                f.debug_tuple(#vname).field(&::membus::__private::format_args!("{}", text)).finish()
            }
        });
        change_arms.push(quote! {
            #i => (#dec)(raw).map(#vis_change::#variant).map_err(|reason| ::membus::__private::FieldError {
                field: #fname,
                raw: ::membus::__private::String::from(raw),
                reason,
            }),
        });
    }
    let locals: Vec<_> = names.iter().map(|(_, l)| l).collect();
    let fields: Vec<_> = names.iter().map(|(f, _)| *f).collect();
    let fingerprint = !m.attrs.no_fingerprint;
    let name_len = m.attrs.name_len.unwrap_or(0);
    let change_doc = format!("A typed change event of [`{ident}`]: one variant per field.");
    let checks = m.fields.iter().map(|f| {
        let fname = f.ident.to_string();
        let msg = format!("field `{fname}` has no length bound: add #[memkv(max_len = N)]");
        let ty = f.ty;
        if matches!(f.kind, Kind::Text) {
            return quote!();
        }
        let attr = match f.attrs.max_len.or(m.attrs.max_len) {
            Some(a) => quote!(::membus::__private::Option::Some(#a)),
            None => quote!(::membus::__private::Option::None),
        };
        quote_spanned! {ty.span()=>
            ::membus::__private::assert!(::membus::__private::max_len(<#ty as ::membus::__private::KvValue>::MAX_LEN, #attr) > 0, #msg);
        }
    });
    let vis = m.vis;
    let type_name = ident.to_string();
    quote! {
        impl #ident {
            #(#consts)*
        }

        #[doc = #change_doc]
        #[allow(dead_code)]
        #vis enum #vis_change {
            #(#variants,)*
        }

        /// Shows each value in its wire text, so field types need not implement `Debug`.
        #[automatically_derived]
        impl ::membus::__private::fmt::Debug for #vis_change {
            fn fmt(&self, f: &mut ::membus::__private::fmt::Formatter<'_>) -> ::membus::__private::fmt::Result {
                let mut text = ::membus::__private::String::new();
                match self {
                    #(#debug_arms)*
                }
            }
        }

        const _: () = {
            #(#checks)*
        };

        #[automatically_derived]
        impl ::membus::__private::KvSchema for #ident {
            type Change = #vis_change;
            const TYPE_NAME: &'static str = #type_name;
            const SLOTS: &'static [::membus::__private::SlotDef] = &[#(#slots),*];
            const FINGERPRINT: bool = #fingerprint;
            const NAME_LEN: usize = #name_len;
            fn encode_slots(&self) -> ::membus::__private::Vec<::membus::__private::String> {
                let mut v = ::membus::__private::Vec::with_capacity(#n);
                #(#encodes)*
                v
            }
            fn decode_slots(raw: &[&str]) -> ::membus::__private::Result<Self, ::membus::__private::Vec<::membus::__private::FieldError>> {
                let mut errors = ::membus::__private::Vec::new();
                #(#decodes)*
                match (#(#locals,)*) {
                    (#(::membus::__private::Option::Some(#locals),)*) => ::membus::__private::Result::Ok(#ident { #(#fields: #locals),* }),
                    _ => ::membus::__private::Result::Err(errors),
                }
            }
            fn decode_change(index: usize, raw: &str) -> ::membus::__private::Result<#vis_change, ::membus::__private::FieldError> {
                match index {
                    #(#change_arms)*
                    _ => ::membus::__private::Result::Err(::membus::__private::FieldError {
                        field: "?",
                        raw: ::membus::__private::String::from(raw),
                        reason: ::membus::__private::String::from("no field has this slot index"),
                    }),
                }
            }
        }
    }
}

/// `#[derive(MemKvEnum)]`.
pub(crate) fn mem_kv_enum(input: &syn::DeriveInput) -> TokenStream {
    let mut cx = Ctxt::new();
    let model = ast::parse_enum(&mut cx, input);
    if let Some(m) = &model {
        valid::check_enum(&mut cx, m);
    }
    let ident = &input.ident;
    match (cx.finish(), model) {
        (Ok(()), Some(m)) => {
            let ident = m.ident;
            let names: Vec<&String> = m.variants.iter().map(|v| &v.name).collect();
            let idents: Vec<&syn::Ident> = m.variants.iter().map(|v| v.ident).collect();
            let ty_name = ident.to_string();
            quote! {
                #[automatically_derived]
                impl ::membus::__private::MemKvEnum for #ident {
                    const VARIANTS: &'static [&'static str] = &[#(#names),*];
                    fn variant_name(&self) -> &'static str {
                        match self { #(#ident::#idents => #names,)* }
                    }
                    fn from_variant_name(name: &str) -> ::membus::__private::Option<Self> {
                        match name {
                            #(#names => ::membus::__private::Option::Some(#ident::#idents),)*
                            _ => ::membus::__private::Option::None,
                        }
                    }
                }
                #[automatically_derived]
                impl ::membus::__private::KvValue for #ident {
                    const MAX_LEN: ::membus::__private::Option<usize> = ::membus::__private::Option::Some(
                        ::membus::__private::max_name_len(<#ident as ::membus::__private::MemKvEnum>::VARIANTS),
                    );
                    const TYPE_NAME: &'static str = #ty_name;
                    const DESC: ::membus::__private::ValueDesc = ::membus::__private::ValueDesc {
                        ty: "enum",
                        optional: false,
                        enum_name: ::membus::__private::Option::Some(#ty_name),
                        variants: <#ident as ::membus::__private::MemKvEnum>::VARIANTS,
                    };
                    fn encode(&self, out: &mut ::membus::__private::String) {
                        out.push_str(::membus::__private::MemKvEnum::variant_name(self));
                    }
                    fn decode(text: &str) -> ::membus::__private::Result<Self, ::membus::__private::String> {
                        ::membus::__private::enum_decode::<#ident>(text)
                    }
                }
            }
        }
        (res, _) => {
            let mut out = res
                .err()
                .map(syn::Error::into_compile_error)
                .unwrap_or_default();
            let (ig, tg, wc) = input.generics.split_for_impl();
            out.extend(quote! {
                #[automatically_derived]
                impl #ig ::membus::__private::MemKvEnum for #ident #tg #wc {
                    const VARIANTS: &'static [&'static str] = &[];
                    fn variant_name(&self) -> &'static str { "" }
                    fn from_variant_name(_: &str) -> ::membus::__private::Option<Self> { ::membus::__private::Option::None }
                }
                #[automatically_derived]
                impl #ig ::membus::__private::KvValue for #ident #tg #wc {
                    const MAX_LEN: ::membus::__private::Option<usize> = ::membus::__private::Option::Some(1);
                    const TYPE_NAME: &'static str = "";
                    fn encode(&self, _: &mut ::membus::__private::String) {}
                    fn decode(_: &str) -> ::membus::__private::Result<Self, ::membus::__private::String> {
                        ::membus::__private::Result::Err(::membus::__private::String::new())
                    }
                }
            });
            out
        }
    }
}
