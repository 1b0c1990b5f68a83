//! Bearer-token access control (`--auth-config`): which tokens exist, which rights each has and
//! which lock names and KV keys it may touch.
//!
//! Every gRPC handler asks [`Access::check`] before it does anything, and the HTTP API runs those
//! same handlers with the HTTP request's `Authorization` header copied in, so both ports enforce
//! the same rules. Without a file everything is open. The Raft service between nodes never asks
//! for a token (peers authenticate with TLS client certificates, `--tls-peer-client-auth`).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use tonic::metadata::MetadataMap;

use super::error::ApiError;

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Right {
    /// Describe, List, ValidateFence, Watch, KV Get and List, Cluster Status.
    Read,
    /// Acquire, Renew, KeepAlive, Release.
    Lock,
    /// KV Put and Delete.
    Kv,
    /// ForceRelease; membership changes (those need the whole namespace, prefix "").
    Admin,
}

impl std::fmt::Display for Right {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Right::Read => "read",
            Right::Lock => "lock",
            Right::Kv => "kv",
            Right::Admin => "admin",
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    token: Vec<TokenEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    /// Who holds it, for messages and logs (never the token itself).
    name: String,
    token: String,
    /// Lock names and KV keys it may touch, by prefix; "" is all.
    prefixes: Vec<String>,
    rights: BTreeSet<Right>,
}

/// One token's grant.
struct Grant {
    name: String,
    token: Vec<u8>,
    prefixes: Vec<Vec<u8>>,
    rights: BTreeSet<Right>,
}

/// The rules of `--auth-config`, or none (everything open).
#[derive(Default)]
pub struct Access {
    grants: Option<Vec<Arc<Grant>>>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: tokens never reach a log.
        let names: Option<Vec<&str>> = self.grants.as_ref().map(|g| g.iter().map(|g| g.name.as_str()).collect());
        f.debug_struct("Access").field("tokens", &names).finish()
    }
}

/// Bytes of a lock name or key as they appear in a message.
fn shown(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

/// Compares in time that depends on the lengths only, not on where the bytes differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Access {
    /// Everything open (no `--auth-config`).
    pub fn open() -> Self {
        Self::default()
    }

    /// Reads the TOML file of `--auth-config`; a message naming the file and the problem if it
    /// cannot be used.
    pub fn load(path: &Path) -> Result<Self, String> {
        let at = |msg: String| format!("--auth-config {}: {msg}", path.display());
        let text = std::fs::read_to_string(path).map_err(|e| at(format!("cannot read it: {e}")))?;
        Self::parse(&text).map_err(at)
    }

    fn parse(text: &str) -> Result<Self, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        if file.token.is_empty() {
            return Err("defines no [[token]]: every call would be refused".into());
        }
        let mut grants: Vec<Arc<Grant>> = Vec::new();
        for (i, t) in file.token.into_iter().enumerate() {
            let which = if t.name.is_empty() { format!("token #{}", i + 1) } else { format!("token {:?}", t.name) };
            if t.name.is_empty() {
                return Err(format!("{which}: `name` is empty"));
            }
            if t.token.is_empty() {
                return Err(format!("{which}: `token` is empty"));
            }
            if !t.token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(format!(
                    "{which}: `token` must be printable ASCII without spaces (it travels in an HTTP header)"
                ));
            }
            if t.prefixes.is_empty() {
                return Err(format!("{which}: `prefixes` is empty; use [\"\"] for every name"));
            }
            if t.rights.is_empty() {
                return Err(format!("{which}: `rights` is empty; give some of read, lock, kv, admin"));
            }
            if grants.iter().any(|g| same_secret(&g.token, t.token.as_bytes())) {
                return Err(format!("{which}: the same `token` is given twice"));
            }
            if grants.iter().any(|g| g.name == t.name) {
                return Err(format!("{which}: the `name` is given twice"));
            }
            grants.push(Arc::new(Grant {
                name: t.name,
                token: t.token.into_bytes(),
                prefixes: t.prefixes.into_iter().map(String::into_bytes).collect(),
                rights: t.rights,
            }));
        }
        Ok(Self { grants: Some(grants) })
    }

    /// Whether tokens are required.
    pub fn enabled(&self) -> bool {
        self.grants.is_some()
    }

    /// Who is calling, from the `authorization: Bearer <token>` metadata.
    pub fn caller(&self, metadata: &MetadataMap) -> Result<Caller, ApiError> {
        let Some(grants) = &self.grants else { return Ok(Caller(None)) };
        let Some(value) = metadata.get("authorization") else {
            return Err(ApiError::Unauthenticated(
                "no bearer token: this cluster requires `authorization: Bearer <token>`".into(),
            ));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or_else(|| ApiError::Unauthenticated("the authorization header is not `Bearer <token>`".into()))?;
        // Every grant is compared, so the time taken does not say which one came close.
        let found =
            grants.iter().fold(None, |found, g| if same_secret(&g.token, token.as_bytes()) { Some(g) } else { found });
        found
            .map(|g| Caller(Some(g.clone())))
            .ok_or_else(|| ApiError::Unauthenticated("the bearer token is not known to this cluster".into()))
    }

    /// Checks the caller has `right` on `name` (a lock name, KV key or a prefix asked for).
    pub fn check(&self, metadata: &MetadataMap, right: Right, name: &[u8]) -> Result<(), ApiError> {
        self.caller(metadata)?.may(right, name)
    }
}

/// An authenticated caller (or anyone, with auth off).
pub struct Caller(Option<Arc<Grant>>);

impl Caller {
    /// Checks the caller has `right` at all, on whatever prefix: for calls that name no lock or
    /// key (Cluster Status).
    pub fn may_any(&self, right: Right) -> Result<(), ApiError> {
        match &self.0 {
            Some(g) if !g.rights.contains(&right) => {
                Err(ApiError::PermissionDenied(format!("token {:?} does not have the `{right}` right", g.name)))
            }
            _ => Ok(()),
        }
    }

    /// Checks the caller has `right` over every name (prefix ""): for cluster-wide changes such
    /// as membership.
    pub fn may_all(&self, right: Right) -> Result<(), ApiError> {
        self.may(right, b"")
    }

    /// Checks `right` on `name`: a lock name, a KV key, or a prefix to list or watch (which
    /// must lie inside one of the token's prefixes).
    pub fn may(&self, right: Right, name: &[u8]) -> Result<(), ApiError> {
        let Some(g) = &self.0 else { return Ok(()) };
        if !g.rights.contains(&right) {
            return Err(ApiError::PermissionDenied(format!("token {:?} does not have the `{right}` right", g.name)));
        }
        if !g.prefixes.iter().any(|p| name.starts_with(p)) {
            let prefixes: Vec<String> = g.prefixes.iter().map(|p| shown(p)).collect();
            return Err(ApiError::PermissionDenied(format!(
                "token {:?} may not touch {}: its prefixes are [{}]",
                g.name,
                shown(name),
                prefixes.join(", ")
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(auth: Option<&str>) -> MetadataMap {
        let mut m = MetadataMap::new();
        if let Some(a) = auth {
            m.insert("authorization", a.parse().unwrap());
        }
        m
    }

    const FILE: &str = r#"
        [[token]]
        name = "ci"
        token = "s3cret"
        prefixes = ["jobs/"]
        rights = ["read", "lock"]

        [[token]]
        name = "ops"
        token = "root"
        prefixes = [""]
        rights = ["admin", "read"]
    "#;

    fn code(r: Result<(), ApiError>) -> &'static str {
        r.err().map_or("OK", |e| e.code())
    }

    #[test]
    fn open_access_lets_everything_through() {
        let a = Access::open();
        assert_eq!(code(a.check(&md(None), Right::Admin, b"x")), "OK");
    }

    #[test]
    fn tokens_are_checked_per_right_and_prefix() {
        let a = Access::parse(FILE).unwrap();
        assert_eq!(code(a.check(&md(None), Right::Read, b"jobs/x")), "UNAUTHENTICATED");
        assert_eq!(code(a.check(&md(Some("Bearer nope")), Right::Read, b"jobs/x")), "UNAUTHENTICATED");
        assert_eq!(code(a.check(&md(Some("s3cret")), Right::Read, b"jobs/x")), "UNAUTHENTICATED");
        let ci = md(Some("Bearer s3cret"));
        assert_eq!(code(a.check(&ci, Right::Lock, b"jobs/x")), "OK");
        assert_eq!(code(a.check(&ci, Right::Lock, b"other/x")), "PERMISSION_DENIED");
        assert_eq!(code(a.check(&ci, Right::Kv, b"jobs/x")), "PERMISSION_DENIED");
        assert_eq!(code(a.check(&ci, Right::Read, b"")), "PERMISSION_DENIED");
        let ops = md(Some("Bearer root"));
        assert_eq!(code(a.check(&ops, Right::Admin, b"")), "OK");
        assert_eq!(code(a.check(&ops, Right::Lock, b"jobs/x")), "PERMISSION_DENIED");
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let err = |text: &str| Access::parse(text).err().unwrap_or_default();
        assert!(err("").contains("no [[token]]"));
        assert!(err("[[token]]\nname = \"a\"\ntoken = \"\"\nprefixes = [\"\"]\nrights = [\"read\"]")
            .contains("`token` is empty"));
        assert!(err("[[token]]\nname = \"a\"\ntoken = \"t\"\nprefixes = [\"\"]\nrights = [\"write\"]")
            .contains("unknown variant"));
        assert!(err("[[token]]\nname = \"a\"\ntoken = \"t t\"\nprefixes = [\"\"]\nrights = [\"read\"]")
            .contains("printable"));
        assert!(err("[[token]]\nname = \"a\"\ntoken = \"t\"\nrights = [\"read\"]").contains("prefixes"));
        assert!(err("[[token]]\nname = \"a\"\ntoken = \"t\"\nprefixes = [\"\"]\nrights = [\"read\"]\n[[token]]\nname = \"b\"\ntoken = \"t\"\nprefixes = [\"\"]\nrights = [\"read\"]").contains("twice"));
    }
}
