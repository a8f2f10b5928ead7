//! The runner's configuration as the operator passes it: environment variables (contract §1).
//!
//! Pure: [`RunnerConfig::from_env`] takes a map, so tests need no process environment. The
//! operator omits empty values, so an empty variable means the same as an unset one.

use std::collections::{BTreeMap, BTreeSet};

use thiserror::Error;

use crate::contract::crd::{DNS_LABEL_RULE, OBJECT_NAME_RULE, is_dns_label, is_object_name};

/// ChaosEngine name.
pub const ENV_CHAOSENGINE: &str = "CHAOSENGINE";
/// Namespace of the engine, experiments, Jobs, results and events.
pub const ENV_CHAOS_NAMESPACE: &str = "CHAOS_NAMESPACE";
/// Experiment names joined by `,`.
pub const ENV_EXPERIMENT_LIST: &str = "EXPERIMENT_LIST";
/// Service account of the experiment pods.
pub const ENV_CHAOS_SVC_ACC: &str = "CHAOS_SVC_ACC";
/// Opaque target string, passed through.
pub const ENV_TARGETS: &str = "TARGETS";
/// Opaque auxiliary application info, passed through.
pub const ENV_AUXILIARY_APPINFO: &str = "AUXILIARY_APPINFO";
/// Analytics id: accepted and ignored (we send no analytics).
pub const ENV_CLIENT_UUID: &str = "CLIENT_UUID";
/// OTLP endpoint for tracing.
pub const ENV_OTEL_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// Trace context carrier, a JSON object of strings.
pub const ENV_TRACE_PARENT: &str = "TRACE_PARENT";

/// A configuration the runner cannot start with.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("environment variable {variable} is not set (or empty)")]
    Missing { variable: &'static str },
    #[error(
        "environment variable EXPERIMENT_LIST={value:?} has an empty entry at position {position} (counting from 0)"
    )]
    EmptyExperiment { value: String, position: usize },
    /// No object could have this name, and the request for it could not even be built (a space)
    /// or would address something else (a `/`, a `?`).
    #[error("environment variable {variable}={value:?} is not a valid {what} name ({rule})")]
    InvalidName {
        variable: &'static str,
        value: String,
        what: &'static str,
        rule: &'static str,
    },
    #[error(
        "environment variable EXPERIMENT_LIST names {name:?} at position {position} (counting from 0), which is not a valid ChaosExperiment name ({OBJECT_NAME_RULE})"
    )]
    InvalidExperiment { name: String, position: usize },
}

/// `TRACE_PARENT` is set but is not a JSON object of strings. The driver warns and drops it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("environment variable TRACE_PARENT is not a JSON object of strings: {reason}")]
pub struct TraceParentError {
    pub reason: String,
}

/// A parsed `TRACE_PARENT`: the carrier map (e.g. `{"traceparent": "00-..."}`) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceCarrier {
    pub fields: BTreeMap<String, String>,
    /// The variable's text, passed on unchanged to the experiment pods.
    pub raw: String,
}

/// The runner's validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerConfig {
    pub engine_name: String,
    pub namespace: String,
    /// Experiment names in run order, non-empty and unique.
    pub experiments: Vec<String>,
    /// Names `EXPERIMENT_LIST` gives more than once (they run once).
    pub repeated_experiments: Vec<String>,
    /// `None` leaves the Job pods on the namespace's default service account.
    pub service_account: Option<String>,
    pub targets: Option<String>,
    pub auxiliary_app_info: Option<String>,
    pub otel_endpoint: Option<String>,
    /// `Some(Err(..))` when set but malformed: not fatal, the driver warns and drops it.
    pub trace_parent: Option<Result<TraceCarrier, TraceParentError>>,
}

impl RunnerConfig {
    /// Reads and validates the configuration from environment variables.
    pub fn from_env(env: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let optional =
            |variable: &str| env.get(variable).filter(|value| !value.is_empty()).cloned();
        let required =
            |variable: &'static str| optional(variable).ok_or(ConfigError::Missing { variable });

        let engine_name = required(ENV_CHAOSENGINE)?;
        if !is_object_name(&engine_name) {
            return Err(ConfigError::InvalidName {
                variable: ENV_CHAOSENGINE,
                value: engine_name,
                what: "ChaosEngine",
                rule: OBJECT_NAME_RULE,
            });
        }
        let namespace = required(ENV_CHAOS_NAMESPACE)?;
        if !is_dns_label(&namespace) {
            return Err(ConfigError::InvalidName {
                variable: ENV_CHAOS_NAMESPACE,
                value: namespace,
                what: "namespace",
                rule: DNS_LABEL_RULE,
            });
        }
        let list = parse_experiment_list(&required(ENV_EXPERIMENT_LIST)?)?;
        // CLIENT_UUID is deliberately not read: no analytics are sent.
        Ok(Self {
            engine_name,
            namespace,
            experiments: list.names,
            repeated_experiments: list.repeated,
            service_account: optional(ENV_CHAOS_SVC_ACC),
            targets: optional(ENV_TARGETS),
            auxiliary_app_info: optional(ENV_AUXILIARY_APPINFO),
            otel_endpoint: optional(ENV_OTEL_ENDPOINT),
            trace_parent: optional(ENV_TRACE_PARENT).map(|raw| parse_trace_parent(&raw)),
        })
    }

    /// The trace carrier if `TRACE_PARENT` was set and valid.
    pub fn valid_trace_parent(&self) -> Option<&TraceCarrier> {
        self.trace_parent
            .as_ref()
            .and_then(|parsed| parsed.as_ref().ok())
    }
}

/// `EXPERIMENT_LIST` split on `,`: each name once, in order, and the names given more than
/// once (each experiment has one status entry, so a repeat runs once; the driver warns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExperimentList {
    pub names: Vec<String>,
    pub repeated: Vec<String>,
}

/// Splits `EXPERIMENT_LIST` on `,`. Surrounding spaces are trimmed (the operator writes none);
/// an empty entry or one that cannot name a ChaosExperiment is an error; a name given twice is
/// kept once and reported in `repeated`.
pub fn parse_experiment_list(value: &str) -> Result<ExperimentList, ConfigError> {
    let mut list = ExperimentList {
        names: Vec::new(),
        repeated: Vec::new(),
    };
    let (mut seen, mut seen_twice) = (BTreeSet::new(), BTreeSet::new());
    for (position, entry) in value.split(',').enumerate() {
        let name = entry.trim();
        if name.is_empty() {
            return Err(ConfigError::EmptyExperiment {
                value: value.to_owned(),
                position,
            });
        }
        if !is_object_name(name) {
            return Err(ConfigError::InvalidExperiment {
                name: name.to_owned(),
                position,
            });
        }
        if seen.insert(name) {
            list.names.push(name.to_owned());
        } else if seen_twice.insert(name) {
            list.repeated.push(name.to_owned());
        }
    }
    Ok(list)
}

/// Parses `TRACE_PARENT` as a JSON object whose values are all strings.
pub fn parse_trace_parent(raw: &str) -> Result<TraceCarrier, TraceParentError> {
    let fields: BTreeMap<String, String> =
        serde_json::from_str(raw).map_err(|error| TraceParentError {
            reason: error.to_string(),
        })?;
    Ok(TraceCarrier {
        fields,
        raw: raw.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect()
    }

    fn minimal() -> BTreeMap<String, String> {
        env(&[
            ("CHAOSENGINE", "demo"),
            ("CHAOS_NAMESPACE", "litmus"),
            ("EXPERIMENT_LIST", "pod-delete,container-kill"),
        ])
    }

    #[test]
    fn minimal_env_parses_and_empty_means_unset() {
        let mut vars = minimal();
        vars.insert("CHAOS_SVC_ACC".into(), String::new());
        vars.insert("CLIENT_UUID".into(), "abc".into());
        let config = RunnerConfig::from_env(&vars).unwrap();
        assert_eq!(config.engine_name, "demo");
        assert_eq!(config.namespace, "litmus");
        assert_eq!(config.experiments, ["pod-delete", "container-kill"]);
        assert_eq!(config.service_account, None);
        assert_eq!(config.trace_parent, None);
    }

    #[test]
    fn missing_or_empty_required_variables_are_named() {
        for variable in ["CHAOSENGINE", "CHAOS_NAMESPACE", "EXPERIMENT_LIST"] {
            let mut vars = minimal();
            vars.remove(variable);
            let error = RunnerConfig::from_env(&vars).unwrap_err();
            assert_eq!(error, ConfigError::Missing { variable });
            vars.insert(variable.into(), String::new());
            assert_eq!(
                RunnerConfig::from_env(&vars).unwrap_err(),
                ConfigError::Missing { variable }
            );
        }
    }

    #[test]
    fn experiment_list_rejects_empty_entries_and_runs_a_repeat_once() {
        assert_eq!(
            parse_experiment_list("a,,b").unwrap_err(),
            ConfigError::EmptyExperiment {
                value: "a,,b".into(),
                position: 1
            }
        );
        assert!(matches!(
            parse_experiment_list("a,"),
            Err(ConfigError::EmptyExperiment { position: 1, .. })
        ));
        assert_eq!(
            parse_experiment_list("a,b,a,c,b,a").unwrap(),
            ExperimentList {
                names: vec!["a".into(), "b".into(), "c".into()],
                repeated: vec!["a".into(), "b".into()],
            }
        );
        assert_eq!(parse_experiment_list(" a , b").unwrap().names, ["a", "b"]);
    }

    #[test]
    fn names_no_object_could_have_are_refused_naming_the_variable() {
        // fixtures/bad/env-*: a name with a space made a request the runner could not build,
        // so it exited 1 and the kubelet restarted it on the same env for ever.
        for bad in [
            "e2e pass",
            "Pod-Delete",
            "../../secrets/token",
            "a?watch=true",
        ] {
            let error = parse_experiment_list(&format!("ok,{bad}")).unwrap_err();
            assert_eq!(
                error,
                ConfigError::InvalidExperiment {
                    name: bad.into(),
                    position: 1
                }
            );
            assert!(error.to_string().contains("EXPERIMENT_LIST"), "{error}");
        }
        let mut vars = minimal();
        vars.insert("CHAOSENGINE".into(), "my engine".into());
        let error = RunnerConfig::from_env(&vars).unwrap_err();
        assert!(matches!(
            error,
            ConfigError::InvalidName {
                variable: "CHAOSENGINE",
                ..
            }
        ));
        let mut vars = minimal();
        vars.insert("CHAOS_NAMESPACE".into(), "litmus.io".into());
        let error = RunnerConfig::from_env(&vars).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "environment variable CHAOS_NAMESPACE=\"litmus.io\" is not a valid namespace name ({DNS_LABEL_RULE})"
            )
        );
    }

    #[test]
    fn a_long_experiment_list_is_split_without_quadratic_lookups() {
        let names: Vec<String> = (0..50_000).map(|index| format!("exp-{index}")).collect();
        let list = parse_experiment_list(&format!("{0},{0}", names.join(","))).unwrap();
        assert_eq!((list.names.len(), list.repeated.len()), (50_000, 50_000));
    }

    #[test]
    fn trace_parent_must_be_an_object_of_strings_but_is_not_fatal() {
        let mut vars = minimal();
        vars.insert(
            "TRACE_PARENT".into(),
            r#"{"traceparent":"00-ab-cd-01"}"#.into(),
        );
        let config = RunnerConfig::from_env(&vars).unwrap();
        let carrier = config.valid_trace_parent().unwrap();
        assert_eq!(carrier.fields["traceparent"], "00-ab-cd-01");

        for bad in [r#"{"traceparent":1}"#, "[]", "not json"] {
            vars.insert("TRACE_PARENT".into(), bad.into());
            let config = RunnerConfig::from_env(&vars).unwrap();
            assert!(matches!(config.trace_parent, Some(Err(_))), "{bad}");
            assert!(config.valid_trace_parent().is_none());
        }
    }
}
