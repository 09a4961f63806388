//! `/os-keypairs`: list, show, import, generate (before 2.92), delete.
//! Keypairs belong to a user; admins may name another (`user_id`, 2.10).

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use md5::Digest as _;
use nova_objects::{KeyPair, ListQuery};
use nova_service::notifications::{KeypairAction, Phase};
use serde_json::{Value, json};

use crate::auth::Ctx;
use crate::fault::{ApiResult, Fault};
use crate::http::{admin_ctx, json_body, require_read};
use crate::microversion::ApiVersion;
use crate::{ApiState, schemas, views};

type St = State<Arc<ApiState>>;
type Params = Query<Vec<(String, String)>>;

fn ssh_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

fn read_string(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let n = u32::from_be_bytes(b.get(..4)?.try_into().ok()?) as usize;
    let s = b.get(4..4 + n)?;
    Some((s, &b[4 + n..]))
}

/// Nova's fingerprint of an OpenSSH public key: MD5 of the key blob,
/// colon-separated hex. `None` for something that is not a public key.
pub(crate) fn fingerprint(public_key: &str) -> Option<String> {
    let mut parts = public_key.split_whitespace();
    let kind = parts.next()?;
    let blob = B64.decode(parts.next()?).ok()?;
    let (name, _) = read_string(&blob)?;
    if name != kind.as_bytes()
        || !(kind.starts_with("ssh-") || kind.starts_with("ecdsa-sha2-") || kind.starts_with("sk-"))
    {
        return None;
    }
    let d = md5::Md5::digest(&blob);
    Some(
        d.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
    )
}

/// A new ed25519 key pair: (OpenSSH public key, OpenSSH private key).
pub(crate) fn generate(comment: &str) -> (String, String) {
    let mut seed = [0u8; 32];
    seed[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    seed[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
    let pk = sk.verifying_key().to_bytes();
    let mut blob = Vec::new();
    ssh_string(&mut blob, b"ssh-ed25519");
    ssh_string(&mut blob, &pk);
    let public = format!("ssh-ed25519 {} {comment}", B64.encode(&blob));
    let check = u32::from_be_bytes(
        *uuid::Uuid::new_v4()
            .as_bytes()
            .first_chunk::<4>()
            .unwrap_or(&[0; 4]),
    );
    let mut private = Vec::new();
    private.extend_from_slice(&check.to_be_bytes());
    private.extend_from_slice(&check.to_be_bytes());
    ssh_string(&mut private, b"ssh-ed25519");
    ssh_string(&mut private, &pk);
    let mut both = seed.to_vec();
    both.extend_from_slice(&pk);
    ssh_string(&mut private, &both);
    ssh_string(&mut private, comment.as_bytes());
    let mut pad = 1u8;
    while private.len() % 8 != 0 {
        private.push(pad);
        pad += 1;
    }
    let mut file = b"openssh-key-v1\0".to_vec();
    ssh_string(&mut file, b"none");
    ssh_string(&mut file, b"none");
    ssh_string(&mut file, b"");
    file.extend_from_slice(&1u32.to_be_bytes());
    ssh_string(&mut file, &blob);
    ssh_string(&mut file, &private);
    let b64 = B64.encode(&file);
    let mut pem = String::from("-----BEGIN OPENSSH PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(70) {
        pem.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END OPENSSH PRIVATE KEY-----\n");
    (public, pem)
}

fn owner(ctx: &Ctx, v: ApiVersion, requested: Option<&str>) -> ApiResult<String> {
    match requested {
        Some(u) if u != ctx.user_id => {
            if !v.at_least(2, 10) || !ctx.is_admin() {
                return Err(Fault::policy("os_compute_api:os-keypairs:index"));
            }
            Ok(u.to_owned())
        }
        _ => Ok(ctx.user_id.clone()),
    }
}

fn brief(v: ApiVersion, k: &KeyPair) -> Value {
    let mut out =
        json!({"name": k.name(), "public_key": k.public_key(), "fingerprint": k.fingerprint()});
    if v.at_least(2, 2) {
        out["type"] = json!(k.r#type());
    }
    out
}

/// nova's create view: the index fields, `type` (2.2), `user_id`, and
/// `private_key` only for a generated key.
fn created(v: ApiVersion, k: &KeyPair, private_key: Option<String>) -> Value {
    let mut out = brief(v, k);
    out["user_id"] = json!(k.user_id());
    if let Some(p) = private_key {
        out["private_key"] = json!(p);
    }
    out
}

/// nova's show view: the create fields plus the record's columns.
fn full(v: ApiVersion, k: &KeyPair) -> Value {
    let mut out = created(v, k, None);
    out["id"] = json!(k.id());
    out["deleted"] = json!(false);
    out["created_at"] = views::usage_time(k.created_at());
    out["updated_at"] = views::usage_time(k.updated_at());
    out["deleted_at"] = Value::Null;
    out
}

/// The DER bytes of a PEM `CERTIFICATE`.
fn pem_certificate(pem: &str) -> Result<Vec<u8>, String> {
    let begin = "-----BEGIN CERTIFICATE-----";
    let end = "-----END CERTIFICATE-----";
    let start = pem
        .find(begin)
        .ok_or("Valid PEM but no BEGIN CERTIFICATE/END CERTIFICATE delimiters.")?
        + begin.len();
    let stop = pem[start..]
        .find(end)
        .ok_or("Valid PEM but no BEGIN CERTIFICATE/END CERTIFICATE delimiters.")?
        + start;
    let b64: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = B64
        .decode(b64)
        .map_err(|e| format!("Unable to load PEM file: {e}"))?;
    // A certificate is a DER SEQUENCE (0x30) of the length it says.
    let well_formed = match der.as_slice() {
        [0x30, n, rest @ ..] if *n < 0x80 => rest.len() == usize::from(*n),
        [0x30, n, rest @ ..] if (0x81..=0x84).contains(n) => {
            let k = usize::from(*n - 0x80);
            rest.len() >= k
                && rest[..k]
                    .iter()
                    .fold(0usize, |a, b| a << 8 | usize::from(*b))
                    == rest.len() - k
        }
        _ => false,
    };
    if !well_formed {
        return Err("Unable to load certificate: not a DER X.509 certificate".into());
    }
    Ok(der)
}

/// nova's `generate_x509_fingerprint`: SHA-1 of the certificate's DER,
/// colon-separated hex.
pub(crate) fn x509_fingerprint(pem: &str) -> Result<String, String> {
    let der = pem_certificate(pem)?;
    Ok(sha1::Sha1::digest(&der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":"))
}

/// nova's `generate_winrm_x509_cert`: a self-signed client certificate
/// for `user_id` made by `openssl` (as nova makes it); returns (the
/// certificate PEM, the PKCS#12 bundle in base64).
async fn generate_x509(user_id: &str) -> Result<(String, String), String> {
    let dir = std::env::temp_dir().join(format!("nova-x509-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir(&dir).map_err(|e| e.to_string())?;
    let result = generate_x509_in(&dir, user_id).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn generate_x509_in(
    dir: &std::path::Path,
    user_id: &str,
) -> Result<(String, String), String> {
    use tokio::process::Command;
    let keyfile = dir.join("temp.key");
    let conffile = dir.join("temp.conf");
    std::fs::write(
        &conffile,
        format!(
            "distinguished_name  = req_distinguished_name\n[req_distinguished_name]\n\
             [v3_req_client]\nextendedKeyUsage = clientAuth\n\
             subjectAltName = otherName:1.3.6.1.4.1.311.20.2.3;UTF8:{user_id}@localhost\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    let cert = Command::new("openssl")
        .args(["req", "-x509", "-nodes", "-days", "3650", "-config"])
        .arg(&conffile)
        .args(["-newkey", "rsa:2048", "-outform", "PEM", "-keyout"])
        .arg(&keyfile)
        .args([
            "-subj",
            &format!("/CN={user_id}"),
            "-extensions",
            "v3_req_client",
        ])
        .output()
        .await
        .map_err(|e| format!("cannot run openssl: {e}"))?;
    if !cert.status.success() {
        return Err(String::from_utf8_lossy(&cert.stderr).into_owned());
    }
    let certificate = String::from_utf8_lossy(&cert.stdout).into_owned();
    let certfile = dir.join("temp.crt");
    std::fs::write(&certfile, &certificate).map_err(|e| e.to_string())?;
    let p12 = Command::new("openssl")
        .args(["pkcs12", "-export", "-inkey"])
        .arg(&keyfile)
        .arg("-in")
        .arg(&certfile)
        .args(["-password", "pass:"])
        .output()
        .await
        .map_err(|e| format!("cannot run openssl: {e}"))?;
    if !p12.status.success() {
        return Err(String::from_utf8_lossy(&p12.stderr).into_owned());
    }
    Ok((certificate, B64.encode(&p12.stdout)))
}

async fn find(st: &ApiState, user: &str, name: &str) -> ApiResult<Option<KeyPair>> {
    let q = ListQuery::new()
        .filter("user_id", user)
        .filter("name", name);
    Ok(st
        .objects
        .list::<KeyPair>(&admin_ctx(), &q)
        .await?
        .into_iter()
        .next())
}

pub(crate) async fn list(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Query(p): Params,
) -> ApiResult<Response> {
    require_read(&ctx, "os_compute_api:os-keypairs:index")?;
    let get = |k: &str| {
        p.iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    let user = owner(&ctx, v, get("user_id"))?;
    let mut all: Vec<KeyPair> = st
        .objects
        .list(
            &admin_ctx(),
            &ListQuery::new().filter("user_id", user.as_str()),
        )
        .await?;
    all.sort_by(|a, b| a.name().cmp(b.name()));
    if v.at_least(2, 35) {
        if let Some(m) = get("marker") {
            match all.iter().position(|k| k.name() == m) {
                Some(i) => {
                    all.drain(..=i);
                }
                None => return Err(Fault::bad_request(format!("marker [{m}] not found"))),
            }
        }
        if let Some(l) = get("limit") {
            let l: usize = l
                .parse()
                .map_err(|_| Fault::bad_request("limit param must be an integer"))?;
            all.truncate(l);
        }
    }
    let list: Vec<Value> = all
        .iter()
        .map(|k| json!({"keypair": brief(v, k)}))
        .collect();
    Ok(axum::Json(json!({"keypairs": list})).into_response())
}

pub(crate) async fn show(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(name): Path<String>,
    Query(p): Params,
) -> ApiResult<Response> {
    require_read(&ctx, "os_compute_api:os-keypairs:show")?;
    let user = owner(
        &ctx,
        v,
        p.iter()
            .find(|(k, _)| k == "user_id")
            .map(|(_, v)| v.as_str()),
    )?;
    match find(&st, &user, &name).await? {
        Some(k) => Ok(axum::Json(json!({"keypair": full(v, &k)})).into_response()),
        None => Err(Fault::not_found(format!(
            "Keypair {name} not found for user {user}"
        ))),
    }
}

pub(crate) async fn create(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    body: Bytes,
) -> ApiResult<Response> {
    require_read(&ctx, "os_compute_api:os-keypairs:create")?;
    let body = json_body(&body)?;
    schemas::check("keypair_create", v, || schemas::keypair_create(v), &body)?;
    let kp = &body["keypair"];
    let name = kp["name"].as_str().unwrap_or_default().to_owned();
    if name.trim().is_empty() || name.chars().any(char::is_control) {
        return Err(Fault::bad_request(format!(
            "Invalid input for field/attribute name. Value: {name:?}. Keypair names must be printable and not only whitespace"
        )));
    }
    let user = owner(&ctx, v, kp["user_id"].as_str())?;
    let kind = kp["type"].as_str().unwrap_or("ssh").to_owned();
    if find(&st, &user, &name).await?.is_some() {
        return Err(Fault::conflict(format!(
            "Key pair '{name}' already exists."
        )));
    }
    let count = st
        .objects
        .list::<KeyPair>(
            &admin_ctx(),
            &ListQuery::new().filter("user_id", user.as_str()),
        )
        .await?
        .len() as i64;
    let limit = crate::quotas::limits(&st, &ctx.project_id, &user)
        .await?
        .key_pairs;
    if limit >= 0 && count >= limit {
        return Err(Fault::forbidden(format!(
            "Quota exceeded for key_pairs: Requested 1, but already used {count} of {limit} key_pairs"
        )));
    }
    let action = if kp["public_key"].is_string() {
        KeypairAction::Import
    } else {
        KeypairAction::Create
    };
    // nova's start notification carries the key pair before its key exists
    // (create) or before its fingerprint is computed (import).
    let pending = KeyPair::new()
        .with_name(name.clone())
        .with_user_id(Some(user.clone()))
        .with_public_key(kp["public_key"].as_str().map(|k| k.trim().to_owned()))
        .with_fingerprint(None)
        .with_type(kind.clone());
    let notifier = &st.notifier;
    let rpc_ctx = ctx.rpc();
    notifier
        .keypair(&rpc_ctx, &pending, action, Phase::Start, &st.cfg.host)
        .await;
    let (public, private) = match kp["public_key"].as_str() {
        Some(pk) => (pk.trim().to_owned(), None),
        None if kind == "x509" => {
            let (cert, bundle) = generate_x509(&user).await.map_err(|e| {
                Fault::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("Unexpected error while generating an X509 certificate: {e}"),
                )
            })?;
            (cert, Some(bundle))
        }
        None => {
            let (p, s) = generate("Generated-by-Nova");
            (p, Some(s))
        }
    };
    let fp = if kind == "x509" {
        x509_fingerprint(&public).map_err(|e| {
            Fault::bad_request(format!(
                "Keypair data is invalid: failed to generate X509 fingerprint. Error message: {e}"
            ))
        })?
    } else {
        fingerprint(&public).ok_or_else(|| {
            Fault::bad_request("Keypair data is invalid: failed to generate fingerprint")
        })?
    };
    let mut k = KeyPair::new()
        .with_name(name)
        .with_user_id(Some(user))
        .with_public_key(Some(public))
        .with_fingerprint(Some(fp))
        .with_type(kind);
    st.objects.create(&admin_ctx(), &mut k).await?;
    notifier
        .keypair(&rpc_ctx, &k, action, Phase::End, &st.cfg.host)
        .await;
    let out = created(v, &k, private);
    let status = if v.at_least(2, 2) {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(json!({"keypair": out}))).into_response())
}

pub(crate) async fn delete(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(name): Path<String>,
    Query(p): Params,
) -> ApiResult<Response> {
    require_read(&ctx, "os_compute_api:os-keypairs:delete")?;
    let user = owner(
        &ctx,
        v,
        p.iter()
            .find(|(k, _)| k == "user_id")
            .map(|(_, v)| v.as_str()),
    )?;
    let Some(mut k) = find(&st, &user, &name).await? else {
        return Err(Fault::not_found(format!(
            "Keypair {name} not found for user {user}"
        )));
    };
    let rpc_ctx = ctx.rpc();
    st.notifier
        .keypair(
            &rpc_ctx,
            &k,
            KeypairAction::Delete,
            Phase::Start,
            &st.cfg.host,
        )
        .await;
    st.objects.destroy(&admin_ctx(), &mut k).await?;
    st.notifier
        .keypair(
            &rpc_ctx,
            &k,
            KeypairAction::Delete,
            Phase::End,
            &st.cfg.host,
        )
        .await;
    Ok(if v.at_least(2, 2) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::ACCEPTED
    }
    .into_response())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_fingerprints_and_openssh_framing() {
        let (public, private) = generate("test");
        assert!(public.starts_with("ssh-ed25519 "));
        let fp = fingerprint(&public).unwrap();
        assert_eq!(fp.len(), 47, "{fp}");
        assert!(private.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"));
        assert!(fingerprint("ssh-rsa not-base64").is_none());
        assert!(
            fingerprint("ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIA==").is_none(),
            "type must match the blob"
        );
    }
}
