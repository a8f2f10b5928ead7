//! What the simulator does with one pod, read from the pod's main container env.

use std::str::FromStr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::PodsimError;

/// Env var that selects the behaviour of the simulated experiment.
pub const BEHAVIOUR_ENV: &str = "PODSIM_BEHAVIOUR";
/// Env var with the duration of the simulated chaos, in (fractional) seconds.
pub const SECONDS_ENV: &str = "PODSIM_SECONDS";
/// Env var overriding the `errorOutput.errorCode` written for `fail` and `error`.
pub const ERROR_CODE_ENV: &str = "PODSIM_ERROR_CODE";
/// Env var overriding the `errorOutput.reason` written for `fail` and `error`.
pub const REASON_ENV: &str = "PODSIM_REASON";
/// Label the Job controller puts on a Job's pods; only such pods are played.
pub const JOB_NAME_LABEL: &str = "job-name";

/// How the simulated experiment behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Behaviour {
    /// Runs, writes verdict `Pass`, pod `Succeeded`.
    Pass,
    /// Runs, writes verdict `Fail` with an error output, pod `Succeeded`.
    Fail,
    /// Runs, writes phase and verdict `Error`, main container exits 1, pod `Failed`.
    Error,
    /// Runs forever; the result stays `Awaited`.
    Hang,
    /// Runs, then the main container is OOM-killed (exit 137), pod `Failed`, no verdict.
    Crash,
    /// Never scheduled: pod `Pending`, condition `PodScheduled` false / `Unschedulable`.
    Pending,
    /// Scheduled, but the image cannot be pulled: `ErrImagePull`, then `ImagePullBackOff`.
    ImagePull,
}

impl Behaviour {
    /// The value of `PODSIM_BEHAVIOUR` that selects this behaviour.
    pub fn as_str(self) -> &'static str {
        match self {
            Behaviour::Pass => "pass",
            Behaviour::Fail => "fail",
            Behaviour::Error => "error",
            Behaviour::Hang => "hang",
            Behaviour::Crash => "crash",
            Behaviour::Pending => "pending",
            Behaviour::ImagePull => "imagepull",
        }
    }

    /// Whether the simulated experiment creates its ChaosResult (it must get to run first).
    pub fn writes_result(self) -> bool {
        matches!(
            self,
            Behaviour::Pass | Behaviour::Fail | Behaviour::Error | Behaviour::Hang
        )
    }
}

impl std::fmt::Display for Behaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The unknown value of a `PODSIM_BEHAVIOUR` that failed to parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownBehaviour(pub String);

impl FromStr for Behaviour {
    type Err = UnknownBehaviour;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "pass" => Ok(Behaviour::Pass),
            "fail" => Ok(Behaviour::Fail),
            "error" => Ok(Behaviour::Error),
            "hang" => Ok(Behaviour::Hang),
            "crash" => Ok(Behaviour::Crash),
            "pending" => Ok(Behaviour::Pending),
            "imagepull" | "image-pull" | "image_pull" => Ok(Behaviour::ImagePull),
            _ => Err(UnknownBehaviour(value.to_owned())),
        }
    }
}

/// The ChaosResult a simulated experiment writes, named as Litmus names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultTarget {
    /// `<engine>-<experiment>[-<instance>]`.
    pub name: String,
    /// `CHAOSENGINE` of the experiment container.
    pub engine: String,
    /// `EXPERIMENT_NAME` of the experiment container.
    pub experiment: String,
    /// `INSTANCE_ID`, empty when unset.
    pub instance: String,
    /// `chaosUID` label of the pod (or `CHAOS_UID` env), copied onto the result.
    pub chaos_uid: Option<String>,
}

/// One container of the pod spec, as the status needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Container name from the spec.
    pub name: String,
    /// Image from the spec (empty if unset).
    pub image: String,
}

/// Everything the simulator needs to play one pod, decided once from the pod.
#[derive(Debug, Clone, PartialEq)]
pub struct PodScript {
    /// Pod name.
    pub pod: String,
    /// Pod uid (used as a delete precondition and to derive fake ids).
    pub uid: String,
    /// The `job-name` label.
    pub job_name: String,
    /// Name of the main container (named like the Job, else the first one).
    pub main_container: String,
    /// Every container of the spec, in order.
    pub containers: Vec<ContainerInfo>,
    /// What the simulated experiment does.
    pub behaviour: Behaviour,
    /// How long the chaos lasts (or how long before the image pull backs off).
    pub duration: Duration,
    /// The result to write, or `None` when `CHAOSENGINE`/`EXPERIMENT_NAME` are not set.
    pub result: Option<ResultTarget>,
    /// `errorOutput.errorCode` for `fail`/`error`.
    pub error_code: String,
    /// `errorOutput.reason` for `fail`/`error`.
    pub error_reason: String,
}

impl PodScript {
    /// Reads the script of a pod that carries a `job-name` label; `Ok(None)` for other pods.
    pub fn from_pod(pod: &Pod) -> Result<Option<PodScript>, PodsimError> {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let malformed = |what: &str| PodsimError::MalformedPod {
            pod: name.clone(),
            what: what.to_owned(),
        };
        let labels = pod.metadata.labels.as_ref();
        let Some(job_name) = labels.and_then(|l| l.get(JOB_NAME_LABEL)).cloned() else {
            return Ok(None);
        };
        if name.is_empty() {
            return Err(malformed("metadata.name is empty"));
        }
        let uid = pod
            .metadata
            .uid
            .clone()
            .ok_or_else(|| malformed("metadata.uid is missing"))?;
        let spec = pod
            .spec
            .as_ref()
            .ok_or_else(|| malformed("spec is missing"))?;
        let main = spec
            .containers
            .iter()
            .find(|c| c.name == job_name)
            .or_else(|| spec.containers.first())
            .ok_or_else(|| malformed("spec.containers is empty"))?;

        let behaviour =
            match env_value(main, BEHAVIOUR_ENV) {
                None => Behaviour::Pass,
                Some(value) => value.parse().map_err(|UnknownBehaviour(value)| {
                    PodsimError::UnknownBehaviour {
                        pod: name.clone(),
                        container: main.name.clone(),
                        value,
                    }
                })?,
            };
        let duration = match (
            env_value(main, SECONDS_ENV),
            env_value(main, "TOTAL_CHAOS_DURATION"),
        ) {
            (Some(value), _) => parse_seconds(&name, &main.name, SECONDS_ENV, value)?,
            (None, Some(value)) => parse_seconds(&name, &main.name, "TOTAL_CHAOS_DURATION", value)?,
            (None, None) => Duration::from_secs(1),
        };

        let chaos_uid = labels
            .and_then(|l| l.get("chaosUID"))
            .map(String::as_str)
            .or_else(|| env_value(main, "CHAOS_UID"))
            .map(str::to_owned);
        let result = match (
            env_value(main, "CHAOSENGINE"),
            env_value(main, "EXPERIMENT_NAME"),
        ) {
            (Some(engine), Some(experiment)) => {
                let instance = env_value(main, "INSTANCE_ID").unwrap_or_default();
                let name = if instance.is_empty() {
                    format!("{engine}-{experiment}")
                } else {
                    format!("{engine}-{experiment}-{instance}")
                };
                Some(ResultTarget {
                    name,
                    engine: engine.to_owned(),
                    experiment: experiment.to_owned(),
                    instance: instance.to_owned(),
                    chaos_uid,
                })
            }
            _ => None,
        };

        let (default_code, default_reason) = match behaviour {
            Behaviour::Error => (
                "GENERIC_ERROR",
                "podsim: the experiment errored (PODSIM_BEHAVIOUR=error)",
            ),
            _ => (
                "STATUS_CHECKS_ERROR",
                "podsim: application status check failed after chaos (PODSIM_BEHAVIOUR=fail)",
            ),
        };
        let error_code = env_value(main, ERROR_CODE_ENV)
            .unwrap_or(default_code)
            .to_owned();
        let error_reason = env_value(main, REASON_ENV)
            .unwrap_or(default_reason)
            .to_owned();

        Ok(Some(PodScript {
            pod: name,
            uid,
            job_name,
            main_container: main.name.clone(),
            containers: spec
                .containers
                .iter()
                .map(|c| ContainerInfo {
                    name: c.name.clone(),
                    image: c.image.clone().unwrap_or_default(),
                })
                .collect(),
            behaviour,
            duration,
            result,
            error_code,
            error_reason,
        }))
    }
}

/// A literal, non-empty env value of a container (`valueFrom` is not resolved: no kubelet).
fn env_value<'c>(container: &'c Container, name: &str) -> Option<&'c str> {
    container
        .env
        .as_ref()?
        .iter()
        .rev() // the kubelet lets the last duplicate win
        .find(|e| e.name == name)
        .and_then(|e| e.value.as_deref())
        .filter(|v| !v.trim().is_empty())
}

fn parse_seconds(
    pod: &str,
    container: &str,
    variable: &'static str,
    value: &str,
) -> Result<Duration, PodsimError> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| PodsimError::BadDuration {
            pod: pod.to_owned(),
            container: container.to_owned(),
            variable,
            value: value.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(env: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {
                "name": "exp-abc123-xyz",
                "uid": "1111",
                "labels": {"job-name": "exp-abc123", "chaosUID": "engine-uid"}
            },
            "spec": {"containers": [
                {"name": "sidecar", "image": "busybox"},
                {"name": "exp-abc123", "image": "litmus/go-runner", "env": env}
            ]}
        }))
        .unwrap()
    }

    #[test]
    fn pods_without_job_name_are_not_played() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "uid": "u"},
            "spec": {"containers": [{"name": "c"}]}
        }))
        .unwrap();
        assert_eq!(PodScript::from_pod(&pod).unwrap(), None);
    }

    #[test]
    fn defaults_to_pass_for_one_second_and_finds_the_main_container_by_job_name() {
        let script = PodScript::from_pod(&pod(json!([]))).unwrap().unwrap();
        assert_eq!(script.behaviour, Behaviour::Pass);
        assert_eq!(script.duration, Duration::from_secs(1));
        assert_eq!(script.main_container, "exp-abc123");
        assert_eq!(script.containers.len(), 2);
        assert_eq!(script.result, None);
    }

    #[test]
    fn reads_behaviour_duration_and_result_name_with_instance() {
        let script = PodScript::from_pod(&pod(json!([
            {"name": "PODSIM_BEHAVIOUR", "value": "Fail"},
            {"name": "TOTAL_CHAOS_DURATION", "value": "30"},
            {"name": "PODSIM_SECONDS", "value": "0.25"},
            {"name": "CHAOSENGINE", "value": "nginx"},
            {"name": "EXPERIMENT_NAME", "value": "pod-delete"},
            {"name": "INSTANCE_ID", "value": "i1"}
        ])))
        .unwrap()
        .unwrap();
        assert_eq!(script.behaviour, Behaviour::Fail);
        assert_eq!(script.duration, Duration::from_millis(250));
        let result = script.result.unwrap();
        assert_eq!(result.name, "nginx-pod-delete-i1");
        assert_eq!(result.instance, "i1");
        assert_eq!(result.chaos_uid.as_deref(), Some("engine-uid"));
    }

    #[test]
    fn total_chaos_duration_is_the_fallback_and_empty_instance_is_unset() {
        let script = PodScript::from_pod(&pod(json!([
            {"name": "TOTAL_CHAOS_DURATION", "value": "3"},
            {"name": "CHAOSENGINE", "value": "nginx"},
            {"name": "EXPERIMENT_NAME", "value": "pod-delete"},
            {"name": "INSTANCE_ID", "value": ""}
        ])))
        .unwrap()
        .unwrap();
        assert_eq!(script.duration, Duration::from_secs(3));
        assert_eq!(script.result.unwrap().name, "nginx-pod-delete");
    }

    #[test]
    fn rejects_unknown_behaviour_and_bad_durations_naming_the_pod() {
        let err = PodScript::from_pod(&pod(
            json!([{"name": "PODSIM_BEHAVIOUR", "value": "explode"}]),
        ))
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("exp-abc123-xyz") && text.contains("explode"),
            "{text}"
        );

        for bad in ["-1", "NaN", "soon", "inf"] {
            let err = PodScript::from_pod(&pod(json!([{"name": "PODSIM_SECONDS", "value": bad}])))
                .unwrap_err();
            assert!(
                matches!(err, PodsimError::BadDuration { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn every_behaviour_round_trips_through_its_name() {
        for b in [
            Behaviour::Pass,
            Behaviour::Fail,
            Behaviour::Error,
            Behaviour::Hang,
            Behaviour::Crash,
            Behaviour::Pending,
            Behaviour::ImagePull,
        ] {
            assert_eq!(b.as_str().parse::<Behaviour>(), Ok(b));
        }
    }
}
