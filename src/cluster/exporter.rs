//! The monitoring exporter the original runner's README describes: when an engine asks for it
//! (`spec.monitoring: true`, the field older Litmus CRDs had, or the annotation
//! `chaos-runner.io/monitoring: "true"`), a chaos-exporter Deployment and Service are ensured in
//! the engine's namespace, owned by the ChaosEngine so they go with it. Created once; a restarted
//! runner finds them (409) and adopts them. Off by default: current Litmus installs the exporter
//! separately.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, PodSpec, PodTemplateSpec, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, PostParams};

use crate::cluster::api::{ApiError, call};

pub const MONITORING_ANNOTATION: &str = "chaos-runner.io/monitoring";
pub const EXPORTER_IMAGE_ANNOTATION: &str = "chaos-runner.io/exporter-image";
pub const DEFAULT_EXPORTER_IMAGE: &str = "litmuschaos/chaos-exporter:3.18.0";
const EXPORTER_PORT: i32 = 8080;

/// What the exporter is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExporterSettings {
    pub image: String,
    pub namespace: String,
}

/// Whether the engine asks for the exporter, and with what settings.
pub fn requested(
    spec: Option<&serde_json::Value>,
    annotations: &BTreeMap<String, String>,
    namespace: &str,
) -> Option<ExporterSettings> {
    let by_spec = spec
        .and_then(|s| s.get("monitoring"))
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    let by_annotation = annotations
        .get(MONITORING_ANNOTATION)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    (by_spec || by_annotation).then(|| ExporterSettings {
        image: annotations
            .get(EXPORTER_IMAGE_ANNOTATION)
            .filter(|v| !v.trim().is_empty())
            .cloned()
            .unwrap_or_else(|| DEFAULT_EXPORTER_IMAGE.to_string()),
        namespace: namespace.to_string(),
    })
}

/// The name shared by the Deployment and the Service.
pub const EXPORTER_NAME: &str = "chaos-exporter";

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app".to_string(), EXPORTER_NAME.to_string()),
        (
            "app.kubernetes.io/component".to_string(),
            "chaos-exporter".to_string(),
        ),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "chaos-runner".to_string(),
        ),
    ])
}

fn meta(settings: &ExporterSettings, owner: &OwnerReference) -> ObjectMeta {
    ObjectMeta {
        name: Some(EXPORTER_NAME.to_string()),
        namespace: Some(settings.namespace.clone()),
        labels: Some(labels()),
        owner_references: Some(vec![owner.clone()]),
        ..Default::default()
    }
}

/// The exporter Deployment: one replica watching the engine's namespace.
pub fn deployment(settings: &ExporterSettings, owner: &OwnerReference) -> Deployment {
    Deployment {
        metadata: meta(settings, owner),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "app".to_string(),
                    EXPORTER_NAME.to_string(),
                )])),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels()),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: EXPORTER_NAME.to_string(),
                        image: Some(settings.image.clone()),
                        image_pull_policy: Some("IfNotPresent".to_string()),
                        ports: Some(vec![ContainerPort {
                            name: Some("tcp".to_string()),
                            container_port: EXPORTER_PORT,
                            ..Default::default()
                        }]),
                        env: Some(vec![EnvVar {
                            name: "WATCH_NAMESPACE".to_string(),
                            value: Some(settings.namespace.clone()),
                            ..Default::default()
                        }]),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The Service in front of it (Prometheus scrapes port `tcp`).
pub fn service(settings: &ExporterSettings, owner: &OwnerReference) -> Service {
    Service {
        metadata: meta(settings, owner),
        spec: Some(ServiceSpec {
            selector: Some(BTreeMap::from([(
                "app".to_string(),
                EXPORTER_NAME.to_string(),
            )])),
            ports: Some(vec![ServicePort {
                name: Some("tcp".to_string()),
                port: EXPORTER_PORT,
                target_port: Some(IntOrString::Int(EXPORTER_PORT)),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Whether an object was made now or found from before (a restarted runner adopts it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    Created,
    Adopted,
}

/// Creates the Deployment and the Service unless they exist.
pub async fn ensure(
    client: &kube::Client,
    settings: &ExporterSettings,
    owner: &OwnerReference,
) -> Result<(Ensured, Ensured), ExporterError> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &settings.namespace);
    let services: Api<Service> = Api::namespaced(client.clone(), &settings.namespace);
    let d = deployment(settings, owner);
    let s = service(settings, owner);
    let post = PostParams::default();
    let created = call("create Deployment chaos-exporter", || {
        deployments.create(&post, &d)
    })
    .await;
    let made_d = created_or_adopted(created, &deployments, EXPORTER_NAME, owner).await?;
    let created = call("create Service chaos-exporter", || {
        services.create(&post, &s)
    })
    .await;
    let made_s = created_or_adopted(created, &services, EXPORTER_NAME, owner).await?;
    Ok((made_d, made_s))
}

/// Why the exporter is not there.
#[derive(Debug, thiserror::Error)]
pub enum ExporterError {
    #[error("{0}")]
    Api(#[from] ApiError),
    /// A same-named object exists that this engine does not own (current Litmus installs its
    /// own `chaos-exporter`): it is left alone, not adopted.
    #[error("{kind} {name} already exists and is not this engine's (no ownerReference to it)")]
    NotOurs { kind: String, name: String },
}

/// A 409 is an adoption only when the existing object is this engine's (a restarted runner
/// finds the one it created); anything else of that name belongs to someone else.
async fn created_or_adopted<K, T>(
    result: Result<T, ApiError>,
    api: &Api<K>,
    name: &str,
    owner: &OwnerReference,
) -> Result<Ensured, ExporterError>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match result {
        Ok(_) => Ok(Ensured::Created),
        Err(error) if error.is_conflict() => {
            let what = format!("get {} {name}", K::kind(&()));
            let existing = call(&what, || api.get_metadata(name)).await?;
            let ours = existing
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|reference| reference.uid == owner.uid);
            if ours {
                Ok(Ensured::Adopted)
            } else {
                Err(ExporterError::NotOurs {
                    kind: K::kind(&()).to_string(),
                    name: name.to_string(),
                })
            }
        }
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn owner() -> OwnerReference {
        OwnerReference {
            api_version: "litmuschaos.io/v1alpha1".into(),
            kind: "ChaosEngine".into(),
            name: "demo".into(),
            uid: "u-1".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    #[test]
    fn off_unless_asked() {
        assert_eq!(requested(None, &BTreeMap::new(), "ns"), None);
        let spec = json!({"monitoring": false});
        assert_eq!(requested(Some(&spec), &BTreeMap::new(), "ns"), None);
    }

    #[test]
    fn asked_by_spec_or_annotation_with_image_override() {
        let spec = json!({"monitoring": true});
        let on = requested(Some(&spec), &BTreeMap::new(), "ns").unwrap();
        assert_eq!(on.image, DEFAULT_EXPORTER_IMAGE);
        let annotations = BTreeMap::from([
            (MONITORING_ANNOTATION.to_string(), "true".to_string()),
            (
                EXPORTER_IMAGE_ANNOTATION.to_string(),
                "my/exporter:1".to_string(),
            ),
        ]);
        let on = requested(None, &annotations, "ns").unwrap();
        assert_eq!(on.image, "my/exporter:1");
    }

    #[test]
    fn both_objects_are_owned_by_the_engine_and_match() {
        let settings = ExporterSettings {
            image: "img".into(),
            namespace: "ns".into(),
        };
        let d = deployment(&settings, &owner());
        let s = service(&settings, &owner());
        assert_eq!(d.metadata.owner_references, Some(vec![owner()]));
        assert_eq!(s.metadata.owner_references, Some(vec![owner()]));
        let selector = d
            .spec
            .as_ref()
            .unwrap()
            .selector
            .match_labels
            .clone()
            .unwrap();
        let pod_labels = d.spec.unwrap().template.metadata.unwrap().labels.unwrap();
        assert!(selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)));
        assert_eq!(s.spec.unwrap().selector.unwrap(), selector);
    }
}
