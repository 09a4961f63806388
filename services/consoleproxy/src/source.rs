//! Where a token leads: [`Source`] (nova's `_get_connect_info`).

use std::collections::HashMap;
use std::sync::Mutex;

use nova_objects::{Instance, Objects};
use nova_rpcapi::compute::ComputeApi;
use nova_service::consoles::{self, TokenRefused};
use nova_service::context::admin;

/// What a valid token connects to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectInfo {
    /// `novnc`, `spice-html5`, `serial`, ...
    pub console_type: String,
    /// The guest's console host.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// A path to `CONNECT` to first, if any.
    pub internal_access_path: Option<String>,
    /// The proxy's base URL the token was made for (its scheme is the
    /// `Origin` scheme expected).
    pub access_url_base: String,
    /// The instance.
    pub instance_uuid: String,
}

/// Why a connection is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// No such token, or it expired, or the console moved (nova's
    /// `InvalidToken`: "The token '***' is invalid or has expired").
    InvalidToken,
    /// The lookup itself failed (database, RPC).
    Failed(String),
}

/// The token → console lookup of a proxy.
#[async_trait::async_trait]
pub trait Source: Send + Sync + std::fmt::Debug {
    /// The console `token` opens, or why not.
    async fn connect_info(&self, token: &str) -> Result<ConnectInfo, Refused>;
}

/// Nova's lookup: the hashed record in the database (expired ones are
/// deleted and refused), then the instance's compute confirms the port
/// (`validate_console_port`).
#[derive(Debug, Clone)]
pub struct DbSource {
    objects: Objects,
    compute: ComputeApi,
}

impl DbSource {
    /// Over the database's objects and the compute RPC client.
    pub fn new(objects: Objects, compute: ComputeApi) -> Self {
        DbSource { objects, compute }
    }
}

#[async_trait::async_trait]
impl Source for DbSource {
    async fn connect_info(&self, token: &str) -> Result<ConnectInfo, Refused> {
        let ctx = admin();
        let rec = match consoles::validate(&self.objects, &ctx, token).await {
            Ok(Ok(r)) => r,
            Ok(Err(TokenRefused::Unknown)) => {
                tracing::info!("console token refused: unknown");
                return Err(Refused::InvalidToken);
            }
            Ok(Err(TokenRefused::Expired)) => {
                tracing::info!("console token refused: expired (deleted)");
                return Err(Refused::InvalidToken);
            }
            Err(e) => return Err(Refused::Failed(e.to_string())),
        };
        let port = u16::try_from(*rec.port()).map_err(|_| Refused::InvalidToken)?;
        let inst: Instance = match self.objects.get_by_uuid(&ctx, rec.instance_uuid()).await {
            Ok(i) => i,
            Err(e) if e.is_not_found() => return Err(Refused::InvalidToken),
            Err(e) => return Err(Refused::Failed(e.to_string())),
        };
        let host = inst.host().clone().unwrap_or_default();
        if host.is_empty() {
            return Err(Refused::InvalidToken);
        }
        let ok = self
            .compute
            .validate_console_port(
                &ctx,
                &host,
                &inst,
                &port.to_string(),
                &rec.console_type().clone(),
            )
            .await
            .map_err(|e| {
                tracing::info!(error = %e, "validate_console_port failed");
                Refused::InvalidToken
            })?;
        if !ok {
            tracing::info!("console token refused: the console is no longer on that port");
            return Err(Refused::InvalidToken);
        }
        Ok(ConnectInfo {
            console_type: rec.console_type().clone(),
            host: rec.host().clone(),
            port,
            internal_access_path: rec.internal_access_path().clone(),
            access_url_base: rec.access_url_base().clone().unwrap_or_default(),
            instance_uuid: rec.instance_uuid().clone(),
        })
    }
}

/// Fixed tokens (tests and the bench: the relay without a database).
#[derive(Debug, Default)]
pub struct StaticSource {
    tokens: Mutex<HashMap<String, ConnectInfo>>,
}

impl StaticSource {
    /// No tokens yet.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds `token`.
    pub fn insert(&self, token: &str, info: ConnectInfo) {
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.to_owned(), info);
    }
}

#[async_trait::async_trait]
impl Source for StaticSource {
    async fn connect_info(&self, token: &str) -> Result<ConnectInfo, Refused> {
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .cloned()
            .ok_or(Refused::InvalidToken)
    }
}
