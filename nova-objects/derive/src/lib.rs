//! `#[nova_object(name = "Flavor", version = "1.2")]`: declares an
//! oslo.versionedobjects-style object once.
//!
//! Applied to a struct with named fields, it adds a hidden
//! `ObjectMeta` field (set and changed bitmaps, decoded version) and
//! generates: accessors (`x()`, `set_x()`, `with_x()`, `x_mut()`, the
//! setters marking the field as changed), the `VersionedObject` impl (the
//! field table with types, nullability and the version each field appeared
//! in), `FieldValue` (so it nests in other objects), and serde
//! `Serialize`/`Deserialize` in the primitive format.
//!
//! Field attributes: `#[field(since = "1.1")]` (version that added it),
//! `#[field(kind = "UUID")]` (the OVO type name when the Rust type does not
//! say it), `#[field(rename = "_rules")]` (the primitive key),
//! `#[field(rel = "1.0=1.0, 1.5=1.1")]` (obj_relationships: parent version
//! → child version). Struct options: `list` (an ObjectListBase: changes
//! in elements mark `objects` changed), `compat = path::to::fn` (extra
//! backport conversions, `fn(&mut Map<String, Value>, ObjVersion)`).
#![allow(unreachable_pub)]

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::{format_ident, quote};
use syn::ext::IdentExt;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, Fields, ItemStruct, Lit, Meta, Token, Type, parse_macro_input};

struct FieldSpec {
    ident: syn::Ident,
    ty: Type,
    key: String,
    since: (u16, u16),
    kind: Option<String>,
    nullable: bool,
    rel: Vec<((u16, u16), (u16, u16))>,
}

fn parse_version(s: &str, span: proc_macro2::Span) -> syn::Result<(u16, u16)> {
    let mut it = s.split('.');
    let major = it.next().and_then(|x| x.parse().ok());
    let minor = it.next().and_then(|x| x.parse().ok());
    match (major, minor, it.next()) {
        (Some(a), Some(b), None) => Ok((a, b)),
        _ => Err(syn::Error::new(
            span,
            format!("version must be X.Y, got {s:?}"),
        )),
    }
}

fn lit_str(e: &Expr) -> syn::Result<String> {
    if let Expr::Lit(l) = e
        && let Lit::Str(s) = &l.lit
    {
        return Ok(s.value());
    }
    Err(syn::Error::new_spanned(e, "expected a string literal"))
}

fn is_option(ty: &Type) -> bool {
    if let Type::Path(p) = ty
        && p.qself.is_none()
        && let Some(seg) = p.path.segments.last()
    {
        return seg.ident == "Option";
    }
    false
}

#[proc_macro_attribute]
pub fn nova_object(attr: TokenStream, item: TokenStream) -> TokenStream {
    let args = match Punctuated::<Meta, Token![,]>::parse_terminated.parse(attr) {
        Ok(a) => a,
        Err(e) => return e.to_compile_error().into(),
    };
    let item = parse_macro_input!(item as ItemStruct);
    match expand(args, item) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand(args: Punctuated<Meta, Token![,]>, mut item: ItemStruct) -> syn::Result<TokenStream2> {
    let mut name = None;
    let mut version = None;
    let mut list = false;
    let mut compat: Option<syn::Path> = None;
    for m in &args {
        match m {
            Meta::NameValue(nv) if nv.path.is_ident("name") => name = Some(lit_str(&nv.value)?),
            Meta::NameValue(nv) if nv.path.is_ident("version") => {
                version = Some(parse_version(
                    &lit_str(&nv.value)?,
                    syn::spanned::Spanned::span(&nv.value),
                )?)
            }
            Meta::NameValue(nv) if nv.path.is_ident("compat") => {
                let Expr::Path(p) = &nv.value else {
                    return Err(syn::Error::new_spanned(&nv.value, "compat = path::to::fn"));
                };
                compat = Some(p.path.clone());
            }
            Meta::Path(p) if p.is_ident("list") => list = true,
            other => return Err(syn::Error::new_spanned(other, "unknown nova_object option")),
        }
    }
    let ident = item.ident.clone();
    let name = name.unwrap_or_else(|| ident.to_string());
    let (vmaj, vmin) = version
        .ok_or_else(|| syn::Error::new_spanned(&item.ident, "version = \"X.Y\" is required"))?;

    let Fields::Named(named) = &mut item.fields else {
        return Err(syn::Error::new_spanned(
            &item,
            "#[nova_object] needs named fields",
        ));
    };
    let mut specs = Vec::new();
    for f in named.named.iter_mut() {
        let Some(fid) = f.ident.clone() else { continue };
        let mut spec = FieldSpec {
            key: fid.unraw().to_string(),
            ident: fid,
            ty: f.ty.clone(),
            since: (1, 0),
            kind: None,
            nullable: is_option(&f.ty),
            rel: Vec::new(),
        };
        let mut keep = Vec::new();
        for a in f.attrs.drain(..) {
            if !a.path().is_ident("field") {
                keep.push(a);
                continue;
            }
            let metas = a.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)?;
            for m in metas {
                let Meta::NameValue(nv) = &m else {
                    return Err(syn::Error::new_spanned(m, "expected key = \"value\""));
                };
                let v = lit_str(&nv.value)?;
                let span = syn::spanned::Spanned::span(&nv.value);
                if nv.path.is_ident("since") {
                    spec.since = parse_version(&v, span)?;
                } else if nv.path.is_ident("kind") {
                    spec.kind = Some(v);
                } else if nv.path.is_ident("rename") {
                    spec.key = v;
                } else if nv.path.is_ident("rel") {
                    for pair in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                        let (a, b) = pair
                            .split_once('=')
                            .ok_or_else(|| syn::Error::new(span, "rel = \"parent=child, ...\""))?;
                        spec.rel.push((
                            parse_version(a.trim(), span)?,
                            parse_version(b.trim(), span)?,
                        ));
                    }
                } else {
                    return Err(syn::Error::new_spanned(&nv.path, "unknown field option"));
                }
            }
        }
        f.attrs = keep;
        if spec.since > (vmaj, vmin) {
            return Err(syn::Error::new_spanned(
                &spec.ident,
                "field added in a version newer than the object's version",
            ));
        }
        specs.push(spec);
    }
    if specs.len() > 128 {
        return Err(syn::Error::new_spanned(&item.ident, "at most 128 fields"));
    }
    named.named.push(syn::Field::parse_named.parse2(quote! {
        #[doc(hidden)]
        __meta: ::nova_objects::ObjectMeta
    })?);

    let n = specs.len();
    let mut infos = Vec::new();
    let mut accessors = Vec::new();
    let mut encode = Vec::new();
    let mut decode = Vec::new();
    let mut index_arms = Vec::new();
    let mut child_changes = Vec::new();
    let mut reset = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        let FieldSpec {
            ident: fid,
            ty,
            key,
            since: (sa, sb),
            nullable,
            ..
        } = s;
        let kind = match &s.kind {
            Some(k) => quote!(::nova_objects::FieldKind::Named(#k)),
            None => {
                quote!(::nova_objects::FieldKind::Of(<#ty as ::nova_objects::FieldValue>::kind))
            }
        };
        let rel = s.rel.iter().map(|((a, b), (c, d))| {
            quote!((::nova_objects::ObjVersion::new(#a, #b), ::nova_objects::ObjVersion::new(#c, #d)))
        });
        infos.push(quote! {
            ::nova_objects::FieldInfo {
                name: #key,
                since: ::nova_objects::ObjVersion::new(#sa, #sb),
                nullable: #nullable,
                kind: #kind,
                child: <#ty as ::nova_objects::FieldValue>::child_class,
                rel: &[#(#rel),*],
            }
        });
        let base = fid.unraw();
        let set = format_ident!("set_{}", base);
        let with = format_ident!("with_{}", base);
        let mutf = format_ident!("{}_mut", base);
        let i128 = i as u32;
        let doc = format!("The `{key}` field (the type's default while unset).");
        accessors.push(quote! {
            #[doc = #doc]
            #[inline]
            pub fn #fid(&self) -> &#ty { &self.#fid }
            /// Sets the field and marks it changed.
            #[inline]
            pub fn #set(&mut self, value: impl ::core::convert::Into<#ty>) {
                self.#fid = value.into();
                self.__meta.mark(#i128);
            }
            /// Builder form of the setter.
            #[inline]
            pub fn #with(mut self, value: impl ::core::convert::Into<#ty>) -> Self {
                self.#set(value);
                self
            }
            /// Mutable access; marks the field set and changed.
            #[inline]
            pub fn #mutf(&mut self) -> &mut #ty {
                self.__meta.mark(#i128);
                &mut self.#fid
            }
        });
        encode.push(quote! {
            if self.__meta.is_set(#i128) {
                map.serialize_entry(#key, &::nova_objects::field::Enc(&self.#fid))?;
            }
        });
        decode.push(quote! {
            #i => {
                self.#fid = map.next_value::<::nova_objects::field::Dec<#ty>>()?.0;
                self.__meta.set_loaded(#i128);
            }
        });
        index_arms.push(quote!(#key => ::core::option::Option::Some(#i),));
        child_changes.push(quote! {
            if self.__meta.is_set(#i128) && ::nova_objects::FieldValue::has_changes(&self.#fid) {
                set.insert(#i128);
            }
        });
        reset.push(quote!(::nova_objects::FieldValue::reset_changes(&mut self.#fid);));
    }
    let compat = match compat {
        Some(p) => quote!(::core::option::Option::Some(#p)),
        None => quote!(::core::option::Option::None),
    };
    let list_changes = if list {
        let Some(i) = specs.iter().position(|s| s.key == "objects") else {
            return Err(syn::Error::new_spanned(
                &item.ident,
                "a list object needs an `objects` field",
            ));
        };
        let i = i as u32;
        quote! {
            if self.__meta.is_set(#i)
                && self.objects.iter().any(::nova_objects::FieldValue::has_changes)
            {
                set.insert(#i);
            }
        }
    } else {
        quote!()
    };
    let (impl_g, ty_g, where_g) = item.generics.split_for_impl();
    if !item.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &item.generics,
            "generic objects are not supported",
        ));
    }
    let _ = (impl_g, ty_g, where_g);

    Ok(quote! {
        #item

        #[allow(clippy::needless_update)]
        impl #ident {
            /// A new object with no field set.
            pub fn new() -> Self { ::core::default::Default::default() }
            #(#accessors)*
        }

        const _: () = {
            static FIELDS: [::nova_objects::FieldInfo; #n] = [#(#infos),*];
            static CLASS: ::nova_objects::ObjectClass = ::nova_objects::ObjectClass {
                name: #name,
                version: ::nova_objects::ObjVersion::new(#vmaj, #vmin),
                fields: &FIELDS,
                compat: #compat,
                decode_value: ::nova_objects::registry::decode_value::<#ident>,
                decode_msgpack: ::nova_objects::registry::decode_msgpack::<#ident>,
            };

            impl ::nova_objects::VersionedObject for #ident {
                const NAME: &'static str = #name;
                const VERSION: ::nova_objects::ObjVersion = ::nova_objects::ObjVersion::new(#vmaj, #vmin);
                fn obj_class() -> &'static ::nova_objects::ObjectClass { &CLASS }
                fn obj_meta(&self) -> &::nova_objects::ObjectMeta { &self.__meta }
                fn obj_meta_mut(&mut self) -> &mut ::nova_objects::ObjectMeta { &mut self.__meta }
                fn obj_field_index(key: &str) -> ::core::option::Option<usize> {
                    match key { #(#index_arms)* _ => ::core::option::Option::None }
                }
                fn obj_child_changes(&self) -> ::nova_objects::FieldSet {
                    let mut set = ::nova_objects::FieldSet::EMPTY;
                    #(#child_changes)*
                    #list_changes
                    set
                }
                fn obj_reset_changes_recursive(&mut self) {
                    self.__meta.clear_changes();
                    #(#reset)*
                }
                fn obj_encode_data<M: ::nova_objects::__serde::ser::SerializeMap>(&self, map: &mut M) -> ::core::result::Result<(), M::Error> {
                    #(#encode)*
                    ::core::result::Result::Ok(())
                }
                fn obj_decode_field<'de, A: ::nova_objects::__serde::de::MapAccess<'de>>(&mut self, index: usize, map: &mut A) -> ::core::result::Result<(), A::Error> {
                    match index {
                        #(#decode)*
                        _ => { map.next_value::<::nova_objects::__serde::de::IgnoredAny>()?; }
                    }
                    ::core::result::Result::Ok(())
                }
            }

            impl ::nova_objects::__serde::Serialize for #ident {
                fn serialize<S: ::nova_objects::__serde::Serializer>(&self, s: S) -> ::core::result::Result<S::Ok, S::Error> {
                    ::nova_objects::primitive::serialize_object(self, s)
                }
            }
            impl<'de> ::nova_objects::__serde::Deserialize<'de> for #ident {
                fn deserialize<D: ::nova_objects::__serde::Deserializer<'de>>(d: D) -> ::core::result::Result<Self, D::Error> {
                    ::nova_objects::primitive::deserialize_object(d)
                }
            }
            impl ::nova_objects::FieldValue for #ident {
                fn kind() -> ::std::string::String { ::std::format!("Object({})", #name) }
                fn encode<S: ::nova_objects::__serde::Serializer>(&self, s: S) -> ::core::result::Result<S::Ok, S::Error> {
                    ::nova_objects::primitive::serialize_object(self, s)
                }
                fn decode<'de, D: ::nova_objects::__serde::Deserializer<'de>>(d: D) -> ::core::result::Result<Self, D::Error> {
                    ::nova_objects::primitive::deserialize_object(d)
                }
                fn child_class() -> ::core::option::Option<&'static ::nova_objects::ObjectClass> { ::core::option::Option::Some(&CLASS) }
                fn has_changes(&self) -> bool { !::nova_objects::VersionedObject::obj_what_changed(self).is_empty() }
                fn reset_changes(&mut self) { ::nova_objects::VersionedObject::obj_reset_changes_recursive(self) }
            }
        };
    })
}
