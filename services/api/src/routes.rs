//! The compute API's route table: one macro invocation (in `lib.rs`) makes
//! both the axum router of `/v2.1` and a constant list of its paths and
//! methods, which the OpenAPI document (`openapi`) is built from, so the
//! two cannot disagree.

/// One route under `/v2.1`: its axum path and its methods (lower case,
/// as axum's `MethodRouter` constructors are named).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The path relative to `/v2.1`, with `{param}` segments.
    pub path: &'static str,
    /// `get`, `post`, `put`, `delete`.
    pub methods: &'static [&'static str],
}

/// `route_table! { fn router_fn, const TABLE; "/path" => get(h).post(h2), ... }`
/// defines `fn router_fn() -> Router<Arc<ApiState>>` with those routes and
/// `const TABLE: &[Route]` listing them.
macro_rules! route_table {
    (fn $router:ident, const $table:ident;
     $( $path:literal => $first:ident ( $fh:path ) $( . $more:ident ( $mh:path ) )* ),* $(,)?) => {
        /// Every route of `/v2.1` behind the token check (the table the
        /// router and the OpenAPI document are both made from).
        pub const $table: &[$crate::routes::Route] = &[
            $( $crate::routes::Route {
                path: $path,
                methods: &[stringify!($first) $(, stringify!($more))*],
            } ),*
        ];

        fn $router() -> axum::Router<std::sync::Arc<$crate::ApiState>> {
            axum::Router::new()
                $( .route($path, axum::routing::$first($fh) $( .$more($mh) )* ) )*
        }
    };
}
