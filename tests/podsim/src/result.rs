//! Writes the ChaosResult the way a Litmus experiment pod does (create, then update).

use std::time::Duration;

use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use crate::PodsimError;
use crate::error::with_deadline;
use crate::script::ResultTarget;

/// How many times a read-modify-write of a result is retried on 409 before giving up.
const CONFLICT_ATTEMPTS: u32 = 8;

/// The `litmuschaos.io/v1alpha1` ChaosResult resource, without the root crate's types.
pub fn chaos_result_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("litmuschaos.io", "v1alpha1", "ChaosResult"),
        "chaosresults",
    )
}

/// The experiment outcome written into `status.experimentStatus`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultUpdate {
    /// Phase `Running`, verdict `Awaited`: the experiment has started.
    Started,
    /// Phase `Completed`, verdict `Pass`, probeSuccessPercentage `100`.
    Passed,
    /// Phase `Completed`, verdict `Fail`, probeSuccessPercentage `0`, with an error output.
    Failed { error_code: String, reason: String },
    /// Phase `Error`, verdict `Error`, with an error output.
    Errored { error_code: String, reason: String },
}

impl ResultUpdate {
    /// `(phase, verdict)` as written.
    pub fn phase_and_verdict(&self) -> (&'static str, &'static str) {
        match self {
            ResultUpdate::Started => ("Running", "Awaited"),
            ResultUpdate::Passed => ("Completed", "Pass"),
            ResultUpdate::Failed { .. } => ("Completed", "Fail"),
            ResultUpdate::Errored { .. } => ("Error", "Error"),
        }
    }

    fn experiment_status(&self) -> Value {
        let (phase, verdict) = self.phase_and_verdict();
        let (percentage, error_output) = match self {
            ResultUpdate::Started => ("Awaited", Value::Null),
            ResultUpdate::Passed => ("100", Value::Null),
            ResultUpdate::Failed { error_code, reason }
            | ResultUpdate::Errored { error_code, reason } => {
                ("0", json!({"errorCode": error_code, "reason": reason}))
            }
        };
        // `errorOutput: null` deletes a previous run's error in a merge patch.
        json!({
            "phase": phase,
            "verdict": verdict,
            "probeSuccessPercentage": percentage,
            "errorOutput": error_output,
        })
    }

    /// The `status.history` counter this outcome increments, if any.
    fn history_counter(&self) -> Option<&'static str> {
        match self {
            ResultUpdate::Started => None,
            ResultUpdate::Passed => Some("passedRuns"),
            ResultUpdate::Failed { .. } | ResultUpdate::Errored { .. } => Some("failedRuns"),
        }
    }
}

/// Writes ChaosResults in one namespace.
#[derive(Clone)]
pub struct ResultWriter {
    api: Api<DynamicObject>,
    deadline: Duration,
}

impl ResultWriter {
    /// A writer for `namespace` whose every API call has `deadline`.
    pub fn new(client: Client, namespace: &str, deadline: Duration) -> Self {
        ResultWriter {
            api: Api::namespaced_with(client, namespace, &chaos_result_resource()),
            deadline,
        }
    }

    /// Creates the result, or updates it when it exists (a re-run of the experiment).
    /// Outcomes other than `Started` also increment `status.history`.
    pub async fn write(
        &self,
        target: &ResultTarget,
        update: &ResultUpdate,
    ) -> Result<(), PodsimError> {
        for _ in 0..CONFLICT_ATTEMPTS {
            let existing = with_deadline("get ChaosResult", &target.name, self.deadline, || {
                self.api.get_opt(&target.name)
            })
            .await?;
            let outcome = match existing {
                None => self.create(target, update).await,
                Some(existing) => self.update(target, update, &existing).await,
            };
            match outcome {
                Err(err) if err.api_status() == Some(409) => continue,
                other => return other,
            }
        }
        Err(PodsimError::ResultConflict {
            result: target.name.clone(),
            attempts: CONFLICT_ATTEMPTS,
        })
    }

    async fn create(
        &self,
        target: &ResultTarget,
        update: &ResultUpdate,
    ) -> Result<(), PodsimError> {
        let mut history =
            json!({"passedRuns": 0, "failedRuns": 0, "stoppedRuns": 0, "targets": []});
        if let Some(counter) = update.history_counter() {
            history[counter] = json!(1);
        }
        let document = json!({
            "apiVersion": "litmuschaos.io/v1alpha1",
            "kind": "ChaosResult",
            "metadata": {"name": target.name, "labels": labels(target)},
            "spec": spec(target),
            "status": {
                "experimentStatus": update.experiment_status(),
                "probeStatuses": [],
                "history": history,
            },
        });
        let object: DynamicObject =
            serde_json::from_value(document).map_err(|source| PodsimError::ResultEncoding {
                result: target.name.clone(),
                source,
            })?;
        let post = PostParams::default();
        with_deadline("create ChaosResult", &target.name, self.deadline, || {
            self.api.create(&post, &object)
        })
        .await?;
        Ok(())
    }

    async fn update(
        &self,
        target: &ResultTarget,
        update: &ResultUpdate,
        existing: &DynamicObject,
    ) -> Result<(), PodsimError> {
        let mut patch = json!({
            "metadata": {"labels": labels(target)},
            "spec": spec(target),
            "status": {"experimentStatus": update.experiment_status()},
        });
        if let Some(counter) = update.history_counter() {
            let previous = existing
                .data
                .pointer(&format!("/status/history/{counter}"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            patch["status"]["history"] = json!({ counter: previous + 1 });
            // The counter is read-modify-write: guard it with the version it was read at.
            if let Some(version) = &existing.metadata.resource_version {
                patch["metadata"]["resourceVersion"] = json!(version);
            }
        }
        let (params, merge) = (PatchParams::default(), Patch::Merge(&patch));
        with_deadline("patch ChaosResult", &target.name, self.deadline, || {
            self.api.patch(&target.name, &params, &merge)
        })
        .await?;
        Ok(())
    }
}

fn spec(target: &ResultTarget) -> Value {
    json!({
        "engine": target.engine,
        "experiment": target.experiment,
        "instance": target.instance,
    })
}

fn labels(target: &ResultTarget) -> Value {
    let mut labels = json!({
        "app.kubernetes.io/component": "experiment-job-result",
        "app.kubernetes.io/part-of": "litmus",
    });
    // Label values are limited to 63 characters; a long result name keeps its result anyway.
    if target.name.len() <= 63 {
        labels["name"] = json!(target.name);
    }
    if let Some(uid) = &target.chaos_uid {
        labels["chaosUID"] = json!(uid);
    }
    labels
}
