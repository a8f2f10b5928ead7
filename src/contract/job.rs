//! The experiment Job (contract §3 step 4) and its deterministic name.
//!
//! Pure: an [`ExperimentRun`] in, a `batch/v1` Job out. Names are derived from a stable hash of
//! the engine uid, experiment, instance and attempt, so a runner restarted after a crash asks
//! for the same Job again, gets AlreadyExists and adopts it instead of launching a second one.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, Container, EnvVar, HostPathVolumeSource, PodSpec, PodTemplateSpec,
    SecretVolumeSource, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use thiserror::Error;

use crate::contract::crd::{API_VERSION, ChaosEngine};
use crate::contract::hash::fnv1a64;
use crate::contract::merge::{ExperimentRun, MountedVolume, field_ref_var, merge_env};

/// Longest Job name we produce. 63 is the limit of the `job-name` label and of container
/// names; 48 leaves room for the sidecar container name `<job>-sidecar-<6>` (15 more
/// characters), which must stay a valid container name and still contain the Job name.
pub const MAX_JOB_NAME_LEN: usize = 48;
/// Length of the random-looking suffix: same shape as the Go runner's names.
pub const SUFFIX_LEN: usize = 6;
/// Mode of ConfigMap and Secret volumes (0644), as the Go runner sets it.
pub const VOLUME_DEFAULT_MODE: i32 = 420;

/// The Job cannot be built for this owner.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BuildJobError {
    #[error("ChaosEngine {engine:?}: metadata.{field} is empty, the Job's ownerReference needs it")]
    OwnerField { engine: String, field: &'static str },
}

/// `SUFFIX_LEN` characters of `[a-z0-9]` from a hash.
fn suffix(mut hash: u64) -> String {
    const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut text = String::with_capacity(SUFFIX_LEN);
    for _ in 0..SUFFIX_LEN {
        text.push(char::from(ALPHABET[(hash % 36) as usize]));
        hash /= 36;
    }
    text
}

/// The deterministic Job name `<exp>-<6 chars of [a-z0-9]>`.
///
/// The experiment part is lowercased, characters that a container name cannot hold become
/// `-`, and it is cut so the whole name fits [`MAX_JOB_NAME_LEN`]. The suffix hashes the
/// original experiment name, so experiments that only differ in the cut part still differ.
pub fn job_name(
    engine_uid: &str,
    experiment: &str,
    instance: Option<&str>,
    attempt: u32,
) -> String {
    let hash = fnv1a64(&[
        engine_uid,
        experiment,
        instance.unwrap_or_default(),
        &attempt.to_string(),
    ]);
    let mut prefix: String = experiment
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .take(MAX_JOB_NAME_LEN - SUFFIX_LEN - 1)
        .collect();
    // A container name must start and end with an alphanumeric character.
    prefix = prefix.trim_matches('-').to_owned();
    if prefix.is_empty() {
        prefix = "experiment".to_owned();
    }
    format!("{prefix}-{}", suffix(hash))
}

/// The sidecar container name `<job>-sidecar-<6 chars>`, deterministic per Job and index.
pub fn sidecar_name(job_name: &str, index: usize) -> String {
    let hash = fnv1a64(&[job_name, "sidecar", &index.to_string()]);
    format!("{job_name}-sidecar-{}", suffix(hash))
}

fn optional_map(map: &BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!map.is_empty()).then(|| map.clone())
}

fn optional_vec<T: Clone>(items: &[T]) -> Option<Vec<T>> {
    (!items.is_empty()).then(|| items.to_vec())
}

fn mount(volume: &MountedVolume) -> VolumeMount {
    VolumeMount {
        name: volume.name.clone(),
        mount_path: volume.mount_path.clone(),
        ..VolumeMount::default()
    }
}

/// Builds the experiment Job.
///
/// `backoffLimit: 0`: one pod per attempt. The Job controller must not retry a failed
/// experiment pod on its own: a retry would inject the chaos again behind the runner's back,
/// overwrite the ChaosResult and confuse the Monitor that follows a single pod. Retries, if
/// any, are the runner's decision and get a new attempt number, hence a new Job name.
// Long on purpose: the Job is assembled field by field in the order of the contract (§3.4),
// so it can be read against it line by line.
pub fn build_job(
    run: &ExperimentRun,
    job_name: &str,
    owner: &ChaosEngine,
) -> Result<Job, BuildJobError> {
    let owner_name = owner
        .metadata
        .name
        .clone()
        .filter(|name| !name.is_empty())
        .ok_or_else(|| BuildJobError::OwnerField {
            engine: run.engine_name.clone(),
            field: "name",
        })?;
    let owner_uid = owner
        .metadata
        .uid
        .clone()
        .filter(|uid| !uid.is_empty())
        .ok_or_else(|| BuildJobError::OwnerField {
            engine: owner_name.clone(),
            field: "uid",
        })?;

    let mut volumes: Vec<Volume> = Vec::new();
    let mut main_mounts: Vec<VolumeMount> = Vec::new();
    for config_map in &run.config_maps {
        volumes.push(Volume {
            name: config_map.name.clone(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_map.name.clone(),
                default_mode: Some(VOLUME_DEFAULT_MODE),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        });
        main_mounts.push(mount(config_map));
    }
    let secret_volume = |secret: &MountedVolume| Volume {
        name: secret.name.clone(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.name.clone()),
            default_mode: Some(VOLUME_DEFAULT_MODE),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    };
    for secret in &run.secrets {
        volumes.push(secret_volume(secret));
        main_mounts.push(mount(secret));
    }
    for host_file in &run.host_file_volumes {
        volumes.push(Volume {
            name: host_file.name.clone(),
            host_path: Some(HostPathVolumeSource {
                path: host_file.node_path.clone(),
                type_: Some(host_file.type_.clone()),
            }),
            ..Volume::default()
        });
        main_mounts.push(VolumeMount {
            name: host_file.name.clone(),
            mount_path: host_file.mount_path.clone(),
            ..VolumeMount::default()
        });
    }

    let mut containers = vec![Container {
        name: job_name.to_owned(),
        image: Some(run.image.clone()),
        image_pull_policy: Some(run.image_pull_policy.clone()),
        command: optional_vec(&run.command),
        args: optional_vec(&run.args),
        env: optional_vec(&run.env),
        resources: run.resources.clone(),
        security_context: run.container_security_context.clone(),
        volume_mounts: optional_vec(&main_mounts),
        ..Container::default()
    }];

    for (index, sidecar) in run.sidecars.iter().enumerate() {
        let injected = [
            field_ref_var("POD_NAME", "metadata.name"),
            field_ref_var("POD_NAMESPACE", "metadata.namespace"),
            EnvVar {
                name: "MAIN_CONTAINER".to_owned(),
                value: Some(job_name.to_owned()),
                value_from: None,
            },
        ];
        // Deduplicated like the main container's env: the injected values win.
        let env = merge_env([sidecar.env.as_slice(), injected.as_slice()]);
        let mut mounts = Vec::new();
        for secret in &sidecar.secrets {
            // A Secret the experiment already mounts shares its volume.
            if !volumes.iter().any(|volume| volume.name == secret.name) {
                volumes.push(secret_volume(secret));
            }
            mounts.push(mount(secret));
        }
        containers.push(Container {
            name: sidecar_name(job_name, index),
            image: Some(sidecar.image.clone()),
            image_pull_policy: Some(sidecar.image_pull_policy.clone()),
            env: Some(env),
            env_from: optional_vec(&sidecar.env_from),
            resources: run.resources.clone(),
            volume_mounts: optional_vec(&mounts),
            ..Container::default()
        });
    }

    let labels = optional_map(&run.labels);
    let annotations = optional_map(&run.annotations);
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(job_name.to_owned()),
            namespace: Some(run.namespace.clone()),
            labels: labels.clone(),
            annotations: annotations.clone(),
            owner_references: Some(vec![OwnerReference {
                api_version: API_VERSION.to_owned(),
                kind: "ChaosEngine".to_owned(),
                name: owner_name,
                uid: owner_uid,
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            template: PodTemplateSpec {
                // Annotations go on the pod too: that is where users' experimentAnnotations
                // (e.g. sidecar-injection switches) take effect.
                metadata: Some(ObjectMeta {
                    labels,
                    annotations,
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".to_owned()),
                    service_account_name: run.service_account.clone(),
                    containers,
                    volumes: optional_vec(&volumes),
                    node_selector: optional_map(&run.node_selector),
                    tolerations: optional_vec(&run.tolerations),
                    image_pull_secrets: optional_vec(&run.image_pull_secrets),
                    host_pid: run.host_pid.then_some(true),
                    security_context: run.pod_security_context.clone(),
                    termination_grace_period_seconds: run.termination_grace_period_seconds,
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_dns_label(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-')
            && !name.ends_with('-')
    }

    #[test]
    fn job_names_are_stable_distinct_and_shaped() {
        let name = job_name("uid-1", "pod-delete", None, 0);
        // Pinned: a change here renames Jobs of runs in flight across an upgrade.
        assert_eq!(name, job_name("uid-1", "pod-delete", None, 0));
        assert!(name.starts_with("pod-delete-"), "{name}");
        assert_eq!(name.len(), "pod-delete-".len() + 6);
        assert!(is_dns_label(&name));
        let others = [
            job_name("uid-2", "pod-delete", None, 0),
            job_name("uid-1", "pod-delete", Some("1"), 0),
            job_name("uid-1", "pod-delete", None, 1),
        ];
        for other in others {
            assert_ne!(other, name);
        }
    }

    #[test]
    fn an_engine_grace_period_of_0_means_unset_as_in_the_operator() {
        use crate::contract::crd::{ChaosEngineSpec, ChaosExperiment, ExperimentDefinition};
        use crate::contract::merge::{RunnerEnv, merge};
        let grace_of = |seconds: Option<i64>| {
            let mut engine = ChaosEngine::new("demo", ChaosEngineSpec::default());
            engine.metadata.uid = Some("uid-9".into());
            engine.spec.termination_grace_period_seconds = seconds;
            let experiment = ChaosExperiment::new("x", ExperimentDefinition::default());
            let run = merge(&engine, &experiment, &RunnerEnv::offline(&engine)).unwrap();
            let job = build_job(&run, "x-abcdef", &engine).unwrap();
            job.spec
                .unwrap()
                .template
                .spec
                .unwrap()
                .termination_grace_period_seconds
        };
        // 0 would kill the experiment pod without the chance to revert its chaos.
        assert_eq!(grace_of(Some(0)), None);
        assert_eq!(grace_of(None), None);
        assert_eq!(grace_of(Some(45)), Some(45));
    }

    #[test]
    fn job_carries_owner_label_and_single_attempt_and_sidecar_env_is_unique() {
        use crate::contract::crd::{
            ChaosEngineSpec, ChaosExperiment, ExperimentDefinition, Sidecar,
        };
        use crate::contract::merge::{RunnerEnv, merge};
        let mut engine = ChaosEngine::new("demo", ChaosEngineSpec::default());
        engine.metadata.uid = Some("uid-9".into());
        engine.metadata.annotations = Some(BTreeMap::from([(
            crate::contract::crd::SIDECAR_ANNOTATION.to_owned(),
            "true".to_owned(),
        )]));
        engine.spec.components.sidecar = vec![Sidecar {
            image: "side:1".into(),
            env: vec![EnvVar {
                name: "POD_NAME".into(),
                value: Some("user".into()),
                value_from: None,
            }],
            ..Sidecar::default()
        }];
        let experiment = ChaosExperiment::new("x", ExperimentDefinition::default());
        let run = merge(&engine, &experiment, &RunnerEnv::offline(&engine)).unwrap();
        let job = build_job(&run, "x-abcdef", &engine).unwrap();
        let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("ChaosEngine", "uid-9")
        );
        assert_eq!(
            (owner.controller, owner.block_owner_deletion),
            (Some(true), Some(true))
        );
        assert_eq!(job.metadata.labels.as_ref().unwrap()["chaosUID"], "uid-9");
        let spec = job.spec.as_ref().unwrap();
        assert_eq!(spec.backoff_limit, Some(0));
        let pod = spec.template.spec.as_ref().unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        assert_eq!(pod.containers[0].name, "x-abcdef");
        let sidecar_env = pod.containers[1].env.as_ref().unwrap();
        let pod_names: Vec<_> = sidecar_env
            .iter()
            .filter(|v| v.name == "POD_NAME")
            .collect();
        assert_eq!(pod_names.len(), 1);
        assert!(pod_names[0].value_from.is_some());

        let mut ownerless = engine.clone();
        ownerless.metadata.uid = None;
        assert_eq!(
            build_job(&run, "x-abcdef", &ownerless).unwrap_err(),
            BuildJobError::OwnerField {
                engine: "demo".into(),
                field: "uid"
            }
        );
    }

    proptest::proptest! {
        #[test]
        fn any_experiment_name_gives_a_valid_bounded_job_and_sidecar_name(
            experiment in "\\PC{0,80}", uid in "[a-f0-9-]{0,36}", attempt in 0u32..5
        ) {
            let name = job_name(&uid, &experiment, None, attempt);
            proptest::prop_assert!(is_dns_label(&name), "{}", name);
            proptest::prop_assert!(name.len() <= MAX_JOB_NAME_LEN);
            proptest::prop_assert!(is_dns_label(&sidecar_name(&name, 3)));
            proptest::prop_assert_eq!(name.clone(), job_name(&uid, &experiment, None, attempt));
        }
    }

    #[test]
    fn long_and_odd_experiment_names_are_cut_to_a_valid_name() {
        let long = "a".repeat(100);
        let name = job_name("uid", &long, None, 0);
        assert_eq!(name.len(), MAX_JOB_NAME_LEN);
        assert!(is_dns_label(&name));
        let dotted = job_name("uid", "Pod.Delete-", None, 0);
        assert!(dotted.starts_with("pod-delete-"), "{dotted}");
        assert!(is_dns_label(&dotted));
        let sidecar = sidecar_name(&name, 0);
        assert!(is_dns_label(&sidecar), "{sidecar}");
        assert!(sidecar.contains(&name));
        assert_ne!(sidecar_name(&name, 1), sidecar);
        assert!(job_name("uid", "---", None, 0).starts_with("experiment-"));
        // Names that only differ past the cut still get different Jobs.
        let cut_a = job_name("uid", &format!("{long}-a"), None, 0);
        let cut_b = job_name("uid", &format!("{long}-b"), None, 0);
        assert_ne!(cut_a, cut_b);
    }
}
