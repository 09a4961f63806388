//! `#[nova_rpc::interface]`: an RPC interface written once, as a trait.
//!
//! The trait is what the server implements (its methods take the caller's
//! `RequestContext` first, then the keyword arguments, and return the
//! reply); from it come the argument decoding, the server `Endpoint`
//! (`Arc<impl Trait>::endpoint()`) and a typed client struct whose methods
//! pick the version to send under the client's version cap, dropping the
//! arguments the chosen version does not have (oslo's `can_send_version`
//! pattern). See `nova_rpc::interface` for the syntax.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as Tokens};
use quote::{format_ident, quote};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    Attribute, Expr, FnArg, Ident, ItemTrait, LitStr, Meta, Pat, ReturnType, Token, TraitItem,
    TraitItemFn, Type,
};

/// Defines an RPC interface; see `nova_rpc::interface`.
#[proc_macro_attribute]
pub fn interface(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = syn::parse_macro_input!(args as InterfaceArgs);
    let item = syn::parse_macro_input!(item as ItemTrait);
    match expand(args, item) {
        Ok(t) => t.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

struct InterfaceArgs {
    topic: Option<Expr>,
    namespace: Option<Expr>,
    version: Expr,
    client: Ident,
}

impl Parse for InterfaceArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let pairs = Punctuated::<syn::MetaNameValue, Token![,]>::parse_terminated(input)?;
        let (mut topic, mut namespace, mut version, mut client) = (None, None, None, None);
        for p in pairs {
            let key = p
                .path
                .get_ident()
                .map(|i| i.to_string())
                .unwrap_or_default();
            match key.as_str() {
                "topic" => topic = Some(p.value),
                "namespace" => namespace = Some(p.value),
                "version" => version = Some(p.value),
                "client" => match p.value {
                    Expr::Path(ep) if ep.path.get_ident().is_some() => {
                        client = ep.path.get_ident().cloned();
                    }
                    other => return Err(syn::Error::new(other.span(), "client = TypeName")),
                },
                _ => {
                    return Err(syn::Error::new(
                        p.path.span(),
                        "expected topic, namespace, version or client",
                    ));
                }
            }
        }
        let need = |v: Option<Expr>, what: &str| {
            v.ok_or_else(|| syn::Error::new(Span::call_site(), format!("missing `{what} = ...`")))
        };
        Ok(InterfaceArgs {
            topic,
            namespace,
            version: need(version, "version")?,
            client: client
                .ok_or_else(|| syn::Error::new(Span::call_site(), "missing `client = Name`"))?,
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Ver(u32, u32);

impl Ver {
    fn parse(lit: &LitStr) -> syn::Result<Ver> {
        let s = lit.value();
        let mut it = s.split('.');
        let (Some(a), Some(b), None) = (it.next(), it.next(), it.next()) else {
            return Err(syn::Error::new(lit.span(), "a version is \"X.Y\""));
        };
        match (a.parse(), b.parse()) {
            (Ok(a), Ok(b)) => Ok(Ver(a, b)),
            _ => Err(syn::Error::new(lit.span(), "a version is \"X.Y\"")),
        }
    }

    fn tokens(self) -> Tokens {
        let (a, b) = (self.0, self.1);
        quote!(::nova_rpc::Version::new(#a, #b))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Call,
    Cast,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    Topic,
    Server,
    Fanout,
}

struct MethodSpec {
    kind: Kind,
    route: Route,
    version: Ver,
    min: Option<Ver>,
    /// A call that may take long (`long`: nova's `long_rpc_timeout`).
    long: bool,
    /// Another topic, used when the version cap allows its version
    /// (`alt_topic = "t", alt_since = "X.Y"`).
    alt: Option<(LitStr, Ver)>,
}

struct ArgSpec {
    name: Ident,
    ty: Type,
    since: Option<Ver>,
    default: bool,
    needed: bool,
}

fn take_rpc_attr(attrs: &mut Vec<Attribute>) -> Option<Attribute> {
    let pos = attrs.iter().position(|a| a.path().is_ident("rpc"))?;
    Some(attrs.remove(pos))
}

fn method_spec(attr: Option<Attribute>, span: Span) -> syn::Result<MethodSpec> {
    let attr = attr.ok_or_else(|| {
        syn::Error::new(
            span,
            "every method needs #[rpc(call|cast, version = \"X.Y\", ...)]",
        )
    })?;
    let metas = attr.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)?;
    let (mut kind, mut route, mut version, mut min) = (None, Route::Topic, None, None);
    let (mut alt_topic, mut alt_since, mut long) = (None, None, false);
    for m in metas {
        match &m {
            Meta::Path(p) if p.is_ident("call") => kind = Some(Kind::Call),
            Meta::Path(p) if p.is_ident("cast") => kind = Some(Kind::Cast),
            Meta::Path(p) if p.is_ident("server") => route = Route::Server,
            Meta::Path(p) if p.is_ident("fanout") => route = Route::Fanout,
            Meta::Path(p) if p.is_ident("long") => long = true,
            Meta::NameValue(nv) if nv.path.is_ident("version") => {
                version = Some(Ver::parse(&lit_str(&nv.value)?)?)
            }
            Meta::NameValue(nv) if nv.path.is_ident("min") => {
                min = Some(Ver::parse(&lit_str(&nv.value)?)?)
            }
            Meta::NameValue(nv) if nv.path.is_ident("alt_topic") => {
                alt_topic = Some(lit_str(&nv.value)?)
            }
            Meta::NameValue(nv) if nv.path.is_ident("alt_since") => {
                alt_since = Some(Ver::parse(&lit_str(&nv.value)?)?)
            }
            other => {
                return Err(syn::Error::new(
                    other.span(),
                    "expected call, cast, server, fanout, long, version = \"X.Y\", min = \"X.Y\", \
                     alt_topic = \"topic\" or alt_since = \"X.Y\"",
                ));
            }
        }
    }
    let kind = kind.ok_or_else(|| syn::Error::new(attr.span(), "say `call` or `cast`"))?;
    if long && kind == Kind::Cast {
        return Err(syn::Error::new(
            attr.span(),
            "only a call waits: `long` is for calls",
        ));
    }
    if kind == Kind::Call && route == Route::Fanout {
        return Err(syn::Error::new(attr.span(), "a fanout is always a cast"));
    }
    let version =
        version.ok_or_else(|| syn::Error::new(attr.span(), "missing version = \"X.Y\""))?;
    if min.is_some_and(|m| m > version) {
        return Err(syn::Error::new(attr.span(), "min is above version"));
    }
    let alt = match (alt_topic, alt_since) {
        (Some(t), Some(v)) => Some((t, v)),
        (None, None) => None,
        _ => {
            return Err(syn::Error::new(
                attr.span(),
                "alt_topic and alt_since go together",
            ));
        }
    };
    Ok(MethodSpec {
        kind,
        route,
        version,
        min,
        long,
        alt,
    })
}

fn lit_str(e: &Expr) -> syn::Result<LitStr> {
    match e {
        Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) => Ok(s.clone()),
        other => Err(syn::Error::new(other.span(), "expected a string literal")),
    }
}

fn arg_spec(pat: &mut syn::PatType) -> syn::Result<ArgSpec> {
    let name = match &*pat.pat {
        Pat::Ident(pi) => pi.ident.clone(),
        other => {
            return Err(syn::Error::new(
                other.span(),
                "arguments are plain names (the keyword on the wire)",
            ));
        }
    };
    let mut spec = ArgSpec {
        name,
        ty: (*pat.ty).clone(),
        since: None,
        default: false,
        needed: false,
    };
    if let Some(attr) = take_rpc_attr(&mut pat.attrs) {
        let metas = attr.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)?;
        for m in metas {
            match &m {
                Meta::Path(p) if p.is_ident("default") => spec.default = true,
                Meta::Path(p) if p.is_ident("needed") => spec.needed = true,
                Meta::NameValue(nv) if nv.path.is_ident("since") => {
                    spec.since = Some(Ver::parse(&lit_str(&nv.value)?)?)
                }
                other => {
                    return Err(syn::Error::new(
                        other.span(),
                        "expected since = \"X.Y\", default or needed",
                    ));
                }
            }
        }
    }
    Ok(spec)
}

fn camel(s: &str) -> String {
    s.split('_')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

fn expand(args: InterfaceArgs, mut item: ItemTrait) -> syn::Result<Tokens> {
    let trait_name = item.ident.clone();
    let vis = item.vis.clone();
    let client = args.client.clone();
    // Without a topic in the definition (an interface every service
    // serves, like the base API), the client's constructor takes one.
    let (topic, topic_param, new_doc) = match &args.topic {
        Some(t) => (
            quote!(#t),
            quote!(),
            quote!(#[doc = "A client on `transport` for the interface's topic and namespace, with no version cap."]),
        ),
        None => (
            quote!(topic),
            quote!(, topic: &str),
            quote!(#[doc = "A client on `transport` for `topic` and the interface's namespace, with no version cap."]),
        ),
    };
    let version = &args.version;
    let namespace = match &args.namespace {
        Some(ns) => quote!(::core::option::Option::Some(#ns)),
        None => quote!(::core::option::Option::None),
    };

    let with_namespace = args
        .namespace
        .as_ref()
        .map(|ns| quote!(.with_namespace(#ns)));
    let mut arg_structs = Vec::new();
    let mut endpoint_methods = Vec::new();
    let mut client_methods = Vec::new();

    for ti in item.items.iter_mut() {
        let TraitItem::Fn(f) = ti else {
            return Err(syn::Error::new(
                ti.span(),
                "an interface holds only methods",
            ));
        };
        let spec = method_spec(take_rpc_attr(&mut f.attrs), f.sig.span())?;
        let (ctx_name, args) = method_args(f)?;
        let name = f.sig.ident.clone();
        let wire = name.to_string();
        let docs: Vec<Attribute> = f
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("doc"))
            .cloned()
            .collect();
        let reply: Type = match &f.sig.output {
            ReturnType::Default => syn::parse_quote!(()),
            ReturnType::Type(_, t) => (**t).clone(),
        };
        if spec.kind == Kind::Cast && !matches!(&reply, Type::Tuple(t) if t.elems.is_empty()) {
            return Err(syn::Error::new(
                f.sig.output.span(),
                "a cast has no reply: leave out the return type",
            ));
        }

        // The server side: `fn m(&self, ctx, args...) -> impl Future<Output = Result<R, RemoteError>> + Send`
        // (nova's signatures: as many keyword arguments as nova has).
        f.attrs
            .push(syn::parse_quote!(#[allow(clippy::too_many_arguments)]));
        if f.sig.asyncness.take().is_none() {
            return Err(syn::Error::new(
                f.sig.span(),
                "interface methods are `async fn`",
            ));
        }
        f.sig.output = syn::parse_quote!(
            -> impl ::core::future::Future<Output = ::core::result::Result<#reply, ::nova_rpc::RemoteError>> + ::core::marker::Send
        );

        // Arguments as they arrive.
        let args_struct = format_ident!("__{}{}Args", trait_name, camel(&wire));
        let fields = args.iter().map(|a| {
            let (n, t) = (&a.name, &a.ty);
            let default = a.default.then(|| quote!(#[serde(default)]));
            quote!(#default #n: #t)
        });
        arg_structs.push(quote! {
            #[doc(hidden)]
            #[allow(non_camel_case_types, dead_code)]
            #[derive(::nova_rpc::__private::serde::Deserialize)]
            #[serde(crate = "::nova_rpc::__private::serde")]
            struct #args_struct { #(#fields,)* }
        });
        let names: Vec<&Ident> = args.iter().map(|a| &a.name).collect();
        endpoint_methods.push(quote! {
            let me = self.clone();
            let ep = ep.method(#wire, move |call: ::nova_rpc::Call, a: #args_struct| {
                let me = me.clone();
                async move { me.#name(call.context, #(a.#names),*).await }
            });
        });

        // The client side.
        let mut candidates = vec![spec.version];
        for a in &args {
            if let Some(s) = a.since
                && s < spec.version
                && spec.min.is_none_or(|m| s >= m)
            {
                candidates.push(s);
            }
        }
        if let Some(m) = spec.min {
            candidates.push(m);
        }
        candidates.sort_by(|a, b| b.cmp(a));
        candidates.dedup();
        let candidates = candidates.iter().map(|v| v.tokens());
        if let Some(a) = args
            .iter()
            .find(|a| a.name == "ctx" || (spec.route == Route::Server && a.name == "server"))
        {
            return Err(syn::Error::new(
                a.name.span(),
                "this name is the client's own parameter (ctx, server)",
            ));
        }
        let route_param = (spec.route == Route::Server).then(|| quote!(server: &str,));
        let route = match spec.route {
            Route::Topic => quote!(),
            Route::Server => quote!(.server(server)),
            Route::Fanout => quote!(.fanout(true)),
        };
        // The alternative topic when the cap allows its version (nova's
        // `prepare_for_alt_rpcserver`), else the interface's own.
        let alt_route = match &spec.alt {
            None => quote!(),
            Some((topic, since)) => {
                let since = since.tokens();
                quote! {
                    let __prepared = if self.client.can_send_version(#since) {
                        __prepared.topic(#topic)
                    } else {
                        __prepared
                    };
                }
            }
        };
        let long = spec.long.then(|| quote!(.long()));
        let params = args.iter().map(|a| {
            let (n, t) = (&a.name, &a.ty);
            quote!(#n: &#t)
        });
        let inserts = args.iter().map(|a| {
            let n = &a.name;
            let key = n.to_string();
            let put = quote! {
                __args.insert(
                    ::std::string::String::from(#key),
                    ::nova_rpc::__private::serde_json::to_value(#n)?,
                );
            };
            match a.since {
                None => put,
                Some(s) => {
                    let s = s.tokens();
                    let ty = &a.ty;
                    let refuse = a.needed.then(|| {
                        quote! {
                            else if *#n != <#ty as ::core::default::Default>::default() {
                                return ::core::result::Result::Err(::nova_rpc::Error::VersionCap {
                                    version: #s.to_string(),
                                    cap: self.client.version_cap_value().map(|c| c.to_string()).unwrap_or_default(),
                                });
                            }
                        }
                    });
                    quote!(if __version >= #s { #put } #refuse)
                }
            }
        });
        let send = match spec.kind {
            Kind::Cast => quote!(.cast(ctx, #wire, __args).await),
            Kind::Call => quote!(.call::<#reply>(ctx, #wire, __args).await),
        };
        let ret = match spec.kind {
            Kind::Cast => quote!(()),
            Kind::Call => quote!(#reply),
        };
        let _ = ctx_name;
        client_methods.push(quote! {
            #(#docs)*
            #[allow(clippy::too_many_arguments)]
            pub async fn #name(
                &self,
                ctx: &::nova_rpc::RequestContext,
                #route_param
                #(#params),*
            ) -> ::nova_rpc::Result<#ret> {
                let __version = self.client.highest_sendable(&[#(#candidates),*])?;
                let mut __args = ::nova_rpc::__private::serde_json::Map::new();
                #(#inserts)*
                let __prepared = self.client.prepare()#route.version(__version)#long;
                #alt_route
                __prepared #send
            }
        });
    }

    // The endpoint, as a provided method of the trait.
    let endpoint: TraitItemFn = syn::parse_quote! {
        /// The server endpoint of this interface over `self` (its
        /// namespace and version; one method per trait method).
        fn endpoint(self: ::std::sync::Arc<Self>) -> ::nova_rpc::Endpoint
        where
            Self: ::core::marker::Sized + ::core::marker::Send + ::core::marker::Sync + 'static,
        {
            let ep = ::nova_rpc::Endpoint::new(#namespace, #version);
            #(#endpoint_methods)*
            ep
        }
    };
    item.items.push(TraitItem::Fn(endpoint));

    let client_doc = format!(
        "The typed client of [`{trait_name}`]: each method sends the newest version the \
         client's version cap allows, without the arguments that version lacks."
    );
    Ok(quote! {
        #item

        #(#arg_structs)*

        #[doc = #client_doc]
        #[derive(Debug, Clone)]
        #vis struct #client {
            client: ::nova_rpc::RpcClient,
        }

        impl #client {
            #new_doc
            pub fn new(transport: ::std::sync::Arc<dyn ::nova_rpc::Transport> #topic_param) -> Self {
                let target = ::nova_rpc::Target::topic(#topic) #with_namespace;
                Self::from_client(::nova_rpc::RpcClient::new(transport, target))
            }

            /// A client over an already configured `RpcClient`.
            pub fn from_client(client: ::nova_rpc::RpcClient) -> Self {
                Self { client }
            }

            /// Sends at most `cap` (`[upgrade_levels]`; `None`: no cap).
            pub fn version_cap(mut self, cap: ::core::option::Option<::nova_rpc::Version>) -> Self {
                self.client = self.client.version_cap(cap);
                self
            }

            /// Calls time out after `timeout`.
            pub fn timeout(mut self, timeout: ::std::time::Duration) -> Self {
                self.client = self.client.timeout(timeout);
                self
            }

            /// The underlying client.
            pub fn rpc_client(&self) -> &::nova_rpc::RpcClient {
                &self.client
            }

            #(#client_methods)*
        }
    })
}

/// The context parameter's name and the keyword arguments of a method.
fn method_args(f: &mut TraitItemFn) -> syn::Result<(Ident, Vec<ArgSpec>)> {
    let mut inputs = f.sig.inputs.iter_mut();
    match inputs.next() {
        Some(FnArg::Receiver(r)) if r.reference.is_some() && r.mutability.is_none() => {}
        _ => return Err(syn::Error::new(f.sig.span(), "methods take `&self` first")),
    }
    let ctx = match inputs.next() {
        Some(FnArg::Typed(pt)) => match &*pt.pat {
            Pat::Ident(pi) if is_context(&pt.ty) => pi.ident.clone(),
            _ => {
                return Err(syn::Error::new(
                    pt.span(),
                    "the second parameter is the caller's `RequestContext`",
                ));
            }
        },
        _ => {
            return Err(syn::Error::new(
                f.sig.span(),
                "the second parameter is the caller's `RequestContext`",
            ));
        }
    };
    let mut out = Vec::new();
    for input in inputs {
        match input {
            FnArg::Typed(pt) => out.push(arg_spec(pt)?),
            FnArg::Receiver(r) => return Err(syn::Error::new(r.span(), "unexpected receiver")),
        }
    }
    Ok((ctx, out))
}

fn is_context(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "RequestContext"))
}
