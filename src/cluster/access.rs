//! What the runner's ServiceAccount may do, asked once at start.
//!
//! The Role that Litmus users already run with grants no `watch`, no secrets and nothing in
//! `events.k8s.io` (contract §5). One `SelfSubjectRulesReview` (allowed for every authenticated
//! user) lists the rules that apply in the namespace; the runner then watches where it may and
//! polls with list/get where it may not. If the review comes back incomplete (an authorizer that
//! cannot enumerate rules), each needed verb is asked with a `SelfSubjectAccessReview`.

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, ResourceRule, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    SelfSubjectRulesReview, SelfSubjectRulesReviewSpec,
};
use kube::api::{Api, PostParams};

use crate::cluster::api::{ApiError, call};

/// A verb on a resource, the unit the runner asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission {
    pub verb: &'static str,
    pub group: &'static str,
    pub resource: &'static str,
}

const fn perm(verb: &'static str, group: &'static str, resource: &'static str) -> Permission {
    Permission {
        verb,
        group,
        resource,
    }
}

pub const WATCH_PODS: Permission = perm("watch", "", "pods");
pub const WATCH_ENGINES: Permission = perm("watch", "litmuschaos.io", "chaosengines");
pub const GET_SECRETS: Permission = perm("get", "", "secrets");
pub const PATCH_EVENTS: Permission = perm("patch", "", "events");
/// What the `OwnerReferencesPermissionEnforcement` admission plugin (default on OpenShift)
/// asks before an object may name the engine with `blockOwnerDeletion: true`.
pub const UPDATE_ENGINE_FINALIZERS: Permission =
    perm("update", "litmuschaos.io", "chaosengines/finalizers");

/// Everything [`Access`] records, in the order it is reported.
const ASKED: [Permission; 5] = [
    WATCH_PODS,
    WATCH_ENGINES,
    GET_SECRETS,
    PATCH_EVENTS,
    UPDATE_ENGINE_FINALIZERS,
];

/// What the runner may do in its namespace, as far as it changes how it works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// Watch experiment pods; otherwise they are listed once per poll interval.
    pub watch_pods: bool,
    /// Watch the ChaosEngine (stop, deletion); otherwise it is read every few poll intervals.
    pub watch_engine: bool,
    /// Read secrets: without it a secret dependency is a named validation failure.
    pub get_secrets: bool,
    /// Patch events, needed to count repeats on one Event instead of creating new ones.
    pub patch_events: bool,
    /// Set `blockOwnerDeletion` on the ownerReference of what the runner creates; without
    /// it the reference still lets the engine's deletion collect them.
    pub block_owner_deletion: bool,
}

impl Access {
    /// Full access: what the project's own deploy/ Role grants.
    pub const ALL: Access = Access {
        watch_pods: true,
        watch_engine: true,
        get_secrets: true,
        patch_events: true,
        block_owner_deletion: true,
    };

    /// Nothing beyond what every run needs: the safe guess when the review cannot be made
    /// (poll, no secrets asked for by name… see the fields).
    pub const LEAST: Access = Access {
        watch_pods: false,
        watch_engine: false,
        get_secrets: false,
        patch_events: false,
        block_owner_deletion: false,
    };

    fn from_answers(allowed: impl Fn(Permission) -> bool) -> Access {
        Access {
            watch_pods: allowed(WATCH_PODS),
            watch_engine: allowed(WATCH_ENGINES),
            get_secrets: allowed(GET_SECRETS),
            patch_events: allowed(PATCH_EVENTS),
            block_owner_deletion: allowed(UPDATE_ENGINE_FINALIZERS),
        }
    }

    /// Decides from the rules of a complete `SelfSubjectRulesReview`.
    pub fn from_rules(rules: &[ResourceRule]) -> Access {
        Access::from_answers(|p| rules.iter().any(|rule| rule_allows(rule, p)))
    }

    /// True when every experiment can be followed by watches (no polling at all).
    pub fn watches(&self) -> bool {
        self.watch_pods && self.watch_engine
    }

    /// One line for the log saying which mode the runner works in and why.
    pub fn describe(&self) -> String {
        let mode = if self.watches() { "watch" } else { "poll" };
        let denied: Vec<String> = ASKED
            .iter()
            .zip([
                self.watch_pods,
                self.watch_engine,
                self.get_secrets,
                self.patch_events,
                self.block_owner_deletion,
            ])
            .filter(|(_, ok)| !ok)
            .map(|(p, _)| format!("{} {}", p.verb, p.resource))
            .collect();
        if denied.is_empty() {
            format!("{mode} mode: every permission the runner can use is granted")
        } else {
            format!("{mode} mode: not permitted: {}", denied.join(", "))
        }
    }
}

fn matches(list: &[String], wanted: &str) -> bool {
    list.iter().any(|item| item == "*" || item == wanted)
}

/// RBAC's resource match: `*`, the exact name, and for a subresource `resource/*` or
/// `*/subresource`.
fn matches_resource(list: &[String], wanted: &str) -> bool {
    let split = wanted.split_once('/');
    list.iter().any(|item| {
        item == "*"
            || item == wanted
            || split.is_some_and(|(resource, sub)| {
                *item == format!("{resource}/*") || *item == format!("*/{sub}")
            })
    })
}

/// Whether one RBAC rule grants `p` (wildcards included; `resourceNames` narrow a rule to
/// named objects, which is not a grant on the whole resource).
fn rule_allows(rule: &ResourceRule, p: Permission) -> bool {
    let groups = rule.api_groups.as_deref().unwrap_or_default();
    let resources = rule.resources.as_deref().unwrap_or_default();
    let named_only = rule.resource_names.as_ref().is_some_and(|n| !n.is_empty());
    !named_only
        && matches(&rule.verbs, p.verb)
        && matches(groups, p.group)
        && matches_resource(resources, p.resource)
}

/// Asks the API server what the runner may do in `namespace`.
pub async fn probe(client: &kube::Client, namespace: &str) -> Access {
    let reviews: Api<SelfSubjectRulesReview> = Api::all(client.clone());
    let review = SelfSubjectRulesReview {
        spec: SelfSubjectRulesReviewSpec {
            namespace: Some(namespace.to_string()),
        },
        ..Default::default()
    };
    let post = PostParams::default();
    let answer = call("create SelfSubjectRulesReview", || {
        reviews.create(&post, &review)
    })
    .await;
    let rules = match answer {
        Ok(answer) => answer.status.filter(|status| !status.incomplete),
        Err(error) => {
            tracing::warn!(%error, "the rules review failed; asking verb by verb");
            None
        }
    };
    if let Some(status) = rules {
        return Access::from_rules(&status.resource_rules);
    }
    // Not knowing what is allowed never stops a run: it runs with the least (poll mode).
    probe_each(client, namespace).await.unwrap_or_else(|error| {
        tracing::warn!(%error, "access reviews failed; assuming the least access (poll mode)");
        Access::LEAST
    })
}

async fn probe_each(client: &kube::Client, namespace: &str) -> Result<Access, ApiError> {
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let mut answers = Vec::with_capacity(ASKED.len());
    for p in ASKED {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(namespace.to_string()),
                    verb: Some(p.verb.to_string()),
                    group: Some(p.group.to_string()),
                    resource: Some(p.resource.to_string()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let post = PostParams::default();
        let answer = call("create SelfSubjectAccessReview", || {
            reviews.create(&post, &review)
        })
        .await?;
        answers.push((p, answer.status.is_some_and(|s| s.allowed)));
    }
    Ok(Access::from_answers(|p| {
        answers.iter().any(|(asked, ok)| *asked == p && *ok)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> ResourceRule {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        ResourceRule {
            api_groups: Some(owned(groups)),
            resources: Some(owned(resources)),
            verbs: owned(verbs),
            resource_names: None,
        }
    }

    /// The Role Litmus users already have (contract §5), as the review reports it.
    fn litmus_user_rules() -> Vec<ResourceRule> {
        vec![
            rule(
                &[""],
                &["pods"],
                &[
                    "create",
                    "delete",
                    "get",
                    "list",
                    "patch",
                    "update",
                    "deletecollection",
                ],
            ),
            rule(
                &[""],
                &["events"],
                &["create", "get", "list", "patch", "update"],
            ),
            rule(&[""], &["configmaps"], &["get", "list"]),
            rule(&[""], &["pods/log"], &["get", "list", "watch"]),
            rule(
                &["batch"],
                &["jobs"],
                &["create", "list", "get", "delete", "deletecollection"],
            ),
            rule(
                &["litmuschaos.io"],
                &["chaosengines", "chaosexperiments", "chaosresults"],
                &["create", "list", "get", "patch", "update", "delete"],
            ),
        ]
    }

    #[test]
    fn the_litmus_user_role_means_poll_mode_without_secrets() {
        let access = Access::from_rules(&litmus_user_rules());
        assert_eq!(
            access,
            Access {
                watch_pods: false,
                watch_engine: false,
                get_secrets: false,
                patch_events: true,
                block_owner_deletion: false,
            }
        );
        assert!(!access.watches());
        assert_eq!(
            access.describe(),
            "poll mode: not permitted: watch pods, watch chaosengines, get secrets, \
             update chaosengines/finalizers"
        );
    }

    #[test]
    fn engine_finalizers_are_granted_by_name_or_by_subresource_wildcards() {
        for resources in [
            &["chaosengines/finalizers"][..],
            &["chaosengines/*"],
            &["*/finalizers"],
            &["*"],
        ] {
            let rules = vec![rule(&["litmuschaos.io"], resources, &["update"])];
            assert!(
                Access::from_rules(&rules).block_owner_deletion,
                "{resources:?}"
            );
        }
        let rules = vec![rule(&["litmuschaos.io"], &["chaosengines"], &["update"])];
        assert!(!Access::from_rules(&rules).block_owner_deletion);
    }

    #[test]
    fn pods_log_watch_is_not_pods_watch() {
        let rules = vec![rule(&[""], &["pods/log"], &["watch"])];
        assert!(!Access::from_rules(&rules).watch_pods);
    }

    #[test]
    fn wildcards_grant_everything() {
        let access = Access::from_rules(&[rule(&["*"], &["*"], &["*"])]);
        assert_eq!(access, Access::ALL);
        assert!(access.describe().starts_with("watch mode"));
    }

    #[test]
    fn a_rule_limited_to_named_objects_is_not_a_grant_on_the_resource() {
        let mut named = rule(&[""], &["secrets"], &["get"]);
        named.resource_names = Some(vec!["one-secret".into()]);
        assert!(!Access::from_rules(&[named]).get_secrets);
    }
}
