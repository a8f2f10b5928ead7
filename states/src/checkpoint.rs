//! The persisted state of one experiment attempt: small, versioned, serde round-trippable.

use serde::{Deserialize, Serialize};

use crate::phase::Phase;

/// The schema this crate writes and the newest it reads.
pub const CHECKPOINT_SCHEMA: u32 = 1;

/// Everything needed to resume an attempt. Unknown fields are ignored on read; a newer
/// `schemaVersion` is refused by [`Checkpoint::from_json_value`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    pub schema_version: u32,
    /// Experiment name as in `EXPERIMENT_LIST`.
    pub experiment: String,
    /// `INSTANCE_ID`, if the engine sets one for this experiment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Attempt (iteration) number, from 1.
    pub attempt: u32,
    /// The phase and its data, flattened: `"phase": "Monitor", "job": …`.
    #[serde(flatten)]
    pub phase: Phase,
    /// When the current phase was entered, as given by the caller (RFC 3339).
    pub entered_at: String,
    /// The last facts observed on accepted transitions.
    #[serde(default)]
    pub observed: Observed,
}

/// Last observed facts, for entries and for humans reading the checkpoint.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Observed {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// `Pending`, `Running`, `Succeeded` or `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_verdict: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_phase: Option<String>,
}

/// Why a stored checkpoint cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint has no numeric schemaVersion")]
    MissingSchemaVersion,
    #[error("checkpoint schemaVersion {found} is newer than the supported {supported}")]
    NewerSchema { found: u64, supported: u32 },
    #[error("checkpoint (schemaVersion {schema_version}) does not decode")]
    Decode {
        schema_version: u64,
        #[source]
        source: serde_json::Error,
    },
}

impl Checkpoint {
    /// A fresh attempt in `Init`.
    pub fn new(
        experiment: impl Into<String>,
        instance: Option<String>,
        attempt: u32,
        now: impl Into<String>,
    ) -> Checkpoint {
        Checkpoint {
            schema_version: CHECKPOINT_SCHEMA,
            experiment: experiment.into(),
            instance,
            attempt,
            phase: Phase::Init,
            entered_at: now.into(),
            observed: Observed::default(),
        }
    }

    /// True once the attempt reached Completed, Skipped or Aborted.
    pub fn is_terminal(&self) -> bool {
        self.phase.kind().is_terminal()
    }

    /// The Job name, once the phase has one.
    pub fn job(&self) -> Option<&str> {
        self.phase.job()
    }

    /// Decodes a stored checkpoint, refusing a newer schema before looking at the rest (a newer
    /// writer may use phases this version does not know).
    pub fn from_json_value(value: serde_json::Value) -> Result<Checkpoint, CheckpointError> {
        let schema_version = value
            .get("schemaVersion")
            .and_then(serde_json::Value::as_u64)
            .ok_or(CheckpointError::MissingSchemaVersion)?;
        if schema_version > u64::from(CHECKPOINT_SCHEMA) {
            return Err(CheckpointError::NewerSchema {
                found: schema_version,
                supported: CHECKPOINT_SCHEMA,
            });
        }
        serde_json::from_value(value).map_err(|source| CheckpointError::Decode {
            schema_version,
            source,
        })
    }

    /// Decodes a stored checkpoint from JSON text; see [`Checkpoint::from_json_value`].
    pub fn from_json(text: &str) -> Result<Checkpoint, CheckpointError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|source| CheckpointError::Decode {
                schema_version: 0,
                source,
            })?;
        Checkpoint::from_json_value(value)
    }
}
