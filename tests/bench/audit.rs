//! Reading the kube-apiserver's audit log (JSON lines, policy level `Metadata`): which requests
//! one identity made, when, with which verb on which resource; and, for the writes the plane's
//! policy logs at level `Request` (patches and updates of ChaosEngines), the size of the body.
//!
//! Every request is counted once, by `auditID`: a plain request is logged at stage
//! `ResponseComplete`; a watch is logged at `ResponseStarted` when it opens and at
//! `ResponseComplete` only when it ends (perhaps after the run), so its first stage counts.
//!
//! The apiserver rotates the log at 100 MB (`audit.log` is renamed `audit-<time>.log` and a new
//! one started) and the plane is shared, so a run may straddle a rotation: a [`Cursor`] keeps
//! the file's inode and follows it into the rotated file.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow};
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

/// One API request as the audit log recorded it.
#[derive(Debug, Clone)]
pub struct AuditRequest {
    /// `get`, `list`, `watch`, `create`, `patch`, `delete`...
    pub verb: String,
    /// `resource[/subresource]`, with the API group when there is one (`jobs.batch`); the
    /// request path for non-resource requests (`/version`).
    pub resource: String,
    /// When the apiserver received the request.
    pub received: SystemTime,
    /// When the stage that counts was reached (response complete; for a watch: started).
    pub answered: SystemTime,
    /// HTTP status code, when logged.
    pub code: Option<u16>,
    /// The request body's size in bytes, when the policy logged the body (`requestObject`,
    /// level `Request`): the length of its compact JSON serialization. The apiserver embeds a
    /// JSON body as it was sent, compacted, so this is the body's size on the wire up to
    /// whitespace and string escapes.
    pub body_bytes: Option<usize>,
}

impl AuditRequest {
    /// `verb resource`, the key of the per-kind breakdown.
    pub fn kind(&self) -> String {
        format!("{} {}", self.verb, self.resource)
    }
}

/// A position in the audit log: the file (by inode, which a rotation keeps) and a byte offset.
#[derive(Debug, Clone)]
pub struct Cursor {
    path: PathBuf,
    inode: u64,
    offset: u64,
}

/// The end of the audit log now: requests logged after it are new.
pub fn end_of(path: &Path) -> anyhow::Result<Cursor> {
    let metadata =
        std::fs::metadata(path).with_context(|| format!("audit log {}", path.display()))?;
    Ok(Cursor {
        path: path.to_path_buf(),
        inode: metadata.ino(),
        offset: metadata.len(),
    })
}

/// The files to read from `cursor` on, each with its start offset: the cursor's file (renamed
/// if it was rotated since), the files rotated after it, then the current log.
fn files_since(cursor: &Cursor) -> anyhow::Result<Vec<(PathBuf, u64)>> {
    let current = std::fs::metadata(&cursor.path)
        .with_context(|| format!("audit log {}", cursor.path.display()))?;
    if current.ino() == cursor.inode {
        return Ok(vec![(cursor.path.clone(), cursor.offset)]);
    }
    let dir = cursor
        .path
        .parent()
        .ok_or_else(|| anyhow!("{}: no parent directory", cursor.path.display()))?;
    let stem = cursor
        .path
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| anyhow!("{}: no file name", cursor.path.display()))?;
    // Rotated names embed the rotation time, so their order is the name order.
    let mut rotated: Vec<(PathBuf, u64)> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|name| name.starts_with(&format!("{stem}-")))
        })
        .filter_map(|entry| Some((entry.path(), entry.metadata().ok()?.ino())))
        .collect();
    rotated.sort();
    let start = rotated
        .iter()
        .position(|(_, inode)| *inode == cursor.inode)
        .ok_or_else(|| {
            anyhow!(
                "{} was rotated and its old file is gone: the run's requests cannot be counted",
                cursor.path.display()
            )
        })?;
    let mut files: Vec<(PathBuf, u64)> = rotated[start..]
        .iter()
        .enumerate()
        .map(|(index, (path, _))| (path.clone(), if index == 0 { cursor.offset } else { 0 }))
        .collect();
    files.push((cursor.path.clone(), 0));
    Ok(files)
}

/// The requests of user `username` logged after `cursor`, in the order they were received.
pub fn requests_since(cursor: &Cursor, username: &str) -> anyhow::Result<Vec<AuditRequest>> {
    requests_matching(cursor, |event| {
        event["user"]["username"].as_str() == Some(username)
    })
}

/// The `create` requests of anyone on `resource` in `namespace` logged after `cursor` (e.g. the
/// Job controller's pod creations), in the order they were received.
pub fn creations_since(
    cursor: &Cursor,
    namespace: &str,
    resource: &str,
) -> anyhow::Result<Vec<AuditRequest>> {
    requests_matching(cursor, |event| {
        event["verb"] == "create"
            && event["objectRef"]["namespace"] == namespace
            && event["objectRef"]["resource"] == resource
            && event["objectRef"]["subresource"].is_null()
    })
}

/// The requests whose audit events `wanted` accepts, logged after `cursor`, in the order they
/// were received.
fn requests_matching(
    cursor: &Cursor,
    wanted: impl Fn(&Value) -> bool,
) -> anyhow::Result<Vec<AuditRequest>> {
    let mut requests: Vec<AuditRequest> = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    for (path, from) in files_since(cursor)? {
        read_requests(&path, from, &wanted, &mut requests, &mut by_id)?;
    }
    requests.sort_by_key(|r| r.received);
    Ok(requests)
}

/// Adds the requests that `wanted` accepts in `path` after byte `from`; `by_id` indexes
/// `requests` by `auditID`, across files.
fn read_requests(
    path: &Path,
    from: u64,
    wanted: &impl Fn(&Value) -> bool,
    requests: &mut Vec<AuditRequest>,
    by_id: &mut HashMap<String, usize>,
) -> anyhow::Result<()> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    file.seek(SeekFrom::Start(from))
        .with_context(|| format!("seeking {} to {from}", path.display()))?;
    let mut reader = BufReader::new(file);
    let mut line = String::new();
    let mut line_number = 0usize;
    loop {
        line.clear();
        let read = reader
            .read_line(&mut line)
            .with_context(|| format!("reading {}", path.display()))?;
        // A line without its newline is still being written: it belongs to a later read.
        if read == 0 || !line.ends_with('\n') {
            break;
        }
        line_number += 1;
        let event: Value = serde_json::from_str(&line).with_context(|| {
            format!(
                "{}: line {line_number} after offset {from} is not JSON",
                path.display()
            )
        })?;
        if !wanted(&event) {
            continue;
        }
        let stage = event["stage"].as_str().unwrap_or_default();
        if stage != "ResponseStarted" && stage != "ResponseComplete" {
            continue;
        }
        let audit_id = event["auditID"].as_str().unwrap_or_default().to_owned();
        let at = |field: &str| -> anyhow::Result<SystemTime> {
            let text = event[field]
                .as_str()
                .ok_or_else(|| anyhow!("audit event {audit_id}: no {field}"))?;
            parse_time(text).with_context(|| format!("audit event {audit_id}: {field}"))
        };
        let code = event["responseStatus"]["code"]
            .as_u64()
            .and_then(|c| u16::try_from(c).ok());
        if let Some(&index) = by_id.get(&audit_id) {
            // The watch's end: keep its start, but take the final code if the start had none.
            if requests[index].code.is_none() {
                requests[index].code = code;
            }
            continue;
        }
        let object = &event["objectRef"];
        let resource = match object["resource"].as_str() {
            Some(resource) => {
                let mut text = resource.to_owned();
                if let Some(sub) = object["subresource"].as_str() {
                    text = format!("{text}/{sub}");
                }
                match object["apiGroup"].as_str() {
                    Some(group) if !group.is_empty() => format!("{text}.{group}"),
                    _ => text,
                }
            }
            None => event["requestURI"]
                .as_str()
                .map(|uri| uri.split('?').next().unwrap_or(uri).to_owned())
                .unwrap_or_else(|| "?".to_owned()),
        };
        by_id.insert(audit_id.clone(), requests.len());
        requests.push(AuditRequest {
            verb: event["verb"].as_str().unwrap_or("?").to_owned(),
            resource,
            received: at("requestReceivedTimestamp")?,
            answered: at("stageTimestamp")?,
            code,
            body_bytes: event
                .get("requestObject")
                .filter(|body| !body.is_null())
                .map(|body| body.to_string().len()),
        });
    }
    Ok(())
}

/// Counts by `verb resource`, sorted by key.
pub fn by_kind(requests: &[AuditRequest]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for request in requests {
        *counts.entry(request.kind()).or_insert(0) += 1;
    }
    counts
}

/// An RFC 3339 timestamp (the audit log's `2026-11-25T22:08:56.915055Z`) as a `SystemTime`.
pub fn parse_time(text: &str) -> anyhow::Result<SystemTime> {
    let timestamp: Timestamp = text
        .parse()
        .with_context(|| format!("not an RFC 3339 timestamp: {text:?}"))?;
    let nanos = u64::try_from(timestamp.as_nanosecond())
        .map_err(|_| anyhow!("timestamp before 1970: {text:?}"))?;
    Ok(UNIX_EPOCH + Duration::from_nanos(nanos))
}
