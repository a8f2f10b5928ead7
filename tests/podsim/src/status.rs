//! Pod status documents shaped like the ones a kubelet writes (merge patches for `pods/status`).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use serde_json::{Value, json};

use crate::script::PodScript;

/// Node the simulator binds pods to; no such Node object needs to exist.
pub const NODE_NAME: &str = "podsim-node";
/// Host IP reported for every simulated pod (TEST-NET-1, never routable).
pub const HOST_IP: &str = "192.0.2.10";

/// How a container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// Process exit code.
    pub code: i32,
    /// Kubelet reason: `Completed`, `Error`, `OOMKilled`.
    pub reason: &'static str,
}

impl Exit {
    /// Exit 0, reason `Completed`.
    pub const COMPLETED: Exit = Exit {
        code: 0,
        reason: "Completed",
    };
    /// Exit 1, reason `Error`.
    pub const ERROR: Exit = Exit {
        code: 1,
        reason: "Error",
    };
    /// Exit 137 (SIGKILL), reason `OOMKilled`.
    pub const OOM_KILLED: Exit = Exit {
        code: 137,
        reason: "OOMKilled",
    };
}

/// A pod's status while every container runs and is ready.
pub fn running(script: &PodScript, started_at: &str) -> Value {
    let statuses: Vec<Value> = script
        .containers
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "image": c.image,
                "imageID": image_id(&c.image),
                "containerID": container_id(&script.uid, &c.name),
                "ready": true,
                "started": true,
                "restartCount": 0,
                "state": {"running": {"startedAt": started_at}},
                "lastState": {},
            })
        })
        .collect();
    json!({"status": {
        "phase": "Running",
        "hostIP": HOST_IP,
        "hostIPs": [{"ip": HOST_IP}],
        "podIP": pod_ip(&script.uid),
        "podIPs": [{"ip": pod_ip(&script.uid)}],
        "startTime": started_at,
        "qosClass": "BestEffort",
        "conditions": conditions(started_at, started_at, true, None),
        "containerStatuses": statuses,
    }})
}

/// A pod's status after every container ended: the main one with `main_exit`, the others with
/// exit 0. The phase is `Succeeded` when every exit code is 0, `Failed` otherwise (restartPolicy
/// Never, as Litmus experiment Jobs use).
pub fn terminated(
    script: &PodScript,
    started_at: &str,
    finished_at: &str,
    main_exit: Exit,
) -> Value {
    let statuses: Vec<Value> = script
        .containers
        .iter()
        .map(|c| {
            let exit = if c.name == script.main_container {
                main_exit
            } else {
                Exit::COMPLETED
            };
            json!({
                "name": c.name,
                "image": c.image,
                "imageID": image_id(&c.image),
                "containerID": container_id(&script.uid, &c.name),
                "ready": false,
                "started": false,
                "restartCount": 0,
                "state": {"terminated": {
                    "exitCode": exit.code,
                    "reason": exit.reason,
                    "startedAt": started_at,
                    "finishedAt": finished_at,
                    "containerID": container_id(&script.uid, &c.name),
                }},
                "lastState": {},
            })
        })
        .collect();
    let phase = if main_exit.code == 0 {
        "Succeeded"
    } else {
        "Failed"
    };
    json!({"status": {
        "phase": phase,
        "hostIP": HOST_IP,
        "hostIPs": [{"ip": HOST_IP}],
        "podIP": pod_ip(&script.uid),
        "podIPs": [{"ip": pod_ip(&script.uid)}],
        "startTime": started_at,
        "qosClass": "BestEffort",
        "conditions": conditions(started_at, finished_at, false, Some("PodCompleted")),
        "containerStatuses": statuses,
    }})
}

/// A pod no node can take: `Pending` with `PodScheduled` false / `Unschedulable`.
pub fn unschedulable(now: &str) -> Value {
    json!({"status": {
        "phase": "Pending",
        "conditions": [{
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector (podsim: PODSIM_BEHAVIOUR=pending).",
            "lastProbeTime": null,
            "lastTransitionTime": now,
        }],
    }})
}

/// A scheduled pod whose main image cannot be pulled: the main container waits with `reason`
/// (`ErrImagePull`, later `ImagePullBackOff`), the others wait in `ContainerCreating`.
pub fn image_pull_failing(script: &PodScript, reason: &str, since: &str) -> Value {
    let statuses: Vec<Value> = script
        .containers
        .iter()
        .map(|c| {
            let waiting = if c.name == script.main_container {
                let message = if reason == "ImagePullBackOff" {
                    format!("Back-off pulling image \"{}\"", c.image)
                } else {
                    format!(
                        "failed to pull and unpack image \"{}\": not found (podsim: PODSIM_BEHAVIOUR=imagepull)",
                        c.image
                    )
                };
                json!({"reason": reason, "message": message})
            } else {
                json!({"reason": "ContainerCreating"})
            };
            json!({
                "name": c.name,
                "image": c.image,
                "imageID": "",
                "ready": false,
                "started": false,
                "restartCount": 0,
                "state": {"waiting": waiting},
                "lastState": {},
            })
        })
        .collect();
    json!({"status": {
        "phase": "Pending",
        "hostIP": HOST_IP,
        "hostIPs": [{"ip": HOST_IP}],
        "podIP": pod_ip(&script.uid),
        "podIPs": [{"ip": pod_ip(&script.uid)}],
        "startTime": since,
        "qosClass": "BestEffort",
        "conditions": [
            condition("PodReadyToStartContainers", true, since, None),
            condition("Initialized", true, since, None),
            condition("Ready", false, since, Some("ContainersNotReady")),
            condition("ContainersReady", false, since, Some("ContainersNotReady")),
            condition("PodScheduled", true, since, None),
        ],
        "containerStatuses": statuses,
    }})
}

/// Pod conditions: scheduled and initialised since `started_at`; readiness last changed at
/// `ready_since`.
fn conditions(
    started_at: &str,
    ready_since: &str,
    ready: bool,
    not_ready_reason: Option<&str>,
) -> Value {
    json!([
        condition("PodReadyToStartContainers", true, started_at, None),
        condition("Initialized", true, started_at, None),
        condition("Ready", ready, ready_since, not_ready_reason),
        condition("ContainersReady", ready, ready_since, not_ready_reason),
        condition("PodScheduled", true, started_at, None),
    ])
}

fn condition(kind: &str, status: bool, at: &str, reason: Option<&str>) -> Value {
    let mut value = json!({
        "type": kind,
        "status": if status { "True" } else { "False" },
        "lastProbeTime": null,
        "lastTransitionTime": at,
    });
    if let (Some(reason), Some(map)) = (reason, value.as_object_mut()) {
        map.insert("reason".into(), Value::from(reason));
    }
    value
}

/// A stable 64-hex-digit digest of some text (not cryptographic: fake ids only).
fn hex_digest(text: &str) -> String {
    (0u8..4)
        .map(|round| {
            let mut hasher = DefaultHasher::new();
            round.hash(&mut hasher);
            text.hash(&mut hasher);
            format!("{:016x}", hasher.finish())
        })
        .collect()
}

fn image_id(image: &str) -> String {
    let repo = image.split(['@', ':']).next().unwrap_or(image);
    format!("{repo}@sha256:{}", hex_digest(image))
}

fn container_id(pod_uid: &str, container: &str) -> String {
    format!(
        "containerd://{}",
        hex_digest(&format!("{pod_uid}/{container}"))
    )
}

/// A pod IP in 10.244.0.0/16 derived from the pod uid (stable across simulator restarts).
fn pod_ip(pod_uid: &str) -> String {
    let digest = hex_digest(pod_uid);
    let byte = |i: usize| u8::from_str_radix(digest.get(i..i + 2).unwrap_or("00"), 16).unwrap_or(0);
    format!("10.244.{}.{}", byte(0), byte(2).clamp(2, 254))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::{Behaviour, ContainerInfo};
    use std::time::Duration;

    fn script() -> PodScript {
        PodScript {
            pod: "p".into(),
            uid: "uid-1".into(),
            job_name: "exp".into(),
            main_container: "exp".into(),
            containers: vec![
                ContainerInfo {
                    name: "exp".into(),
                    image: "litmuschaos/go-runner:3.18.0".into(),
                },
                ContainerInfo {
                    name: "exp-sidecar-abcdef".into(),
                    image: "busybox".into(),
                },
            ],
            behaviour: Behaviour::Error,
            duration: Duration::from_secs(1),
            result: None,
            error_code: String::new(),
            error_reason: String::new(),
        }
    }

    #[test]
    fn running_reports_every_spec_container_ready_with_ids() {
        let status = running(&script(), "2026-01-01T00:00:00Z");
        let statuses = status["status"]["containerStatuses"].as_array().unwrap();
        assert_eq!(statuses.len(), 2);
        assert_eq!(statuses[1]["name"], "exp-sidecar-abcdef");
        for s in statuses {
            assert_eq!(s["ready"], true);
            assert_eq!(s["state"]["running"]["startedAt"], "2026-01-01T00:00:00Z");
            assert!(
                s["containerID"]
                    .as_str()
                    .unwrap()
                    .starts_with("containerd://")
            );
            assert!(s["imageID"].as_str().unwrap().contains("@sha256:"));
        }
        assert_eq!(status["status"]["phase"], "Running");
        assert_ne!(
            status["status"]["containerStatuses"][0]["containerID"],
            statuses[1]["containerID"]
        );
    }

    #[test]
    fn terminated_fails_the_pod_when_the_main_container_exits_non_zero() {
        let status = terminated(&script(), "t0", "t1", Exit::ERROR);
        assert_eq!(status["status"]["phase"], "Failed");
        let statuses = status["status"]["containerStatuses"].as_array().unwrap();
        assert_eq!(statuses[0]["state"]["terminated"]["exitCode"], 1);
        assert_eq!(statuses[0]["state"]["terminated"]["reason"], "Error");
        assert_eq!(statuses[1]["state"]["terminated"]["exitCode"], 0);
        let ok = terminated(&script(), "t0", "t1", Exit::COMPLETED);
        assert_eq!(ok["status"]["phase"], "Succeeded");
    }

    #[test]
    fn pod_ip_is_a_valid_stable_ipv4() {
        let ip: std::net::Ipv4Addr = pod_ip("uid-1").parse().unwrap();
        assert_eq!(ip.octets()[0..2], [10, 244]);
        assert_eq!(pod_ip("uid-1"), pod_ip("uid-1"));
    }
}
