//! Events on the real API server: a repeat is aggregated on one Event (`count`), an Event
//! re-sent by a restarted runner is not counted twice, and the queue sends in order.

mod common;

use chaos_runner::cluster::events::{EngineRef, EventQueue, EventReport, EventSink, EventType};
use common::TestNamespace;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};

fn report(key: &str, message: &str) -> EventReport {
    EventReport {
        kind: EventType::Warning,
        reason: "ExperimentTimedOut".into(),
        message: message.into(),
        key: key.into(),
    }
}

fn engine(ns: &TestNamespace) -> EngineRef {
    EngineRef {
        name: "demo".into(),
        namespace: ns.name().into(),
        uid: "2f1f7a3e-0000-4000-8000-000000000001".into(),
    }
}

async fn events(ns: &TestNamespace) -> anyhow::Result<Vec<Event>> {
    let api: Api<Event> = Api::namespaced(ns.client(), ns.name());
    let by_engine = ListParams::default().fields("involvedObject.name=demo");
    Ok(api.list(&by_engine).await?.items)
}

#[tokio::test]
async fn repeats_are_counted_on_one_event_and_a_restart_does_not_count_twice() -> anyhow::Result<()>
{
    let ns = TestNamespace::create("events-agg").await?;
    let sink = EventSink::new(ns.client(), engine(&ns), true);
    sink.emit(&report("a#1/timeout", "first")).await?;
    sink.emit(&report("a#1/timeout", "second")).await?;
    sink.emit(&report("a#1/timeout", "third")).await?;
    sink.emit(&report("b#1/timeout", "other")).await?;

    let found = events(&ns).await?;
    assert_eq!(found.len(), 2, "one Event per key: {found:#?}");
    let repeated = found
        .iter()
        .find(|e| e.metadata.name.as_deref() == Some(sink.event_name("a#1/timeout").as_str()))
        .expect("the repeated key's Event");
    assert_eq!(repeated.count, Some(3));
    assert_eq!(repeated.message.as_deref(), Some("third"));
    assert_eq!(repeated.type_.as_deref(), Some("Warning"));
    assert_eq!(
        repeated
            .source
            .as_ref()
            .and_then(|s| s.component.as_deref()),
        Some("demo-runner")
    );
    let involved = &repeated.involved_object;
    assert_eq!(involved.kind.as_deref(), Some("ChaosEngine"));
    assert_eq!(
        involved.api_version.as_deref(),
        Some("litmuschaos.io/v1alpha1")
    );

    // A restarted runner re-sends the transition it may not have reported: already there, so
    // neither a second Event nor a higher count.
    let restarted = EventSink::new(ns.client(), engine(&ns), true);
    restarted.emit(&report("b#1/timeout", "other")).await?;
    let found = events(&ns).await?;
    assert_eq!(found.len(), 2);
    let other = found
        .iter()
        .find(|e| e.message.as_deref() == Some("other"))
        .expect("the other Event");
    assert_eq!(other.count, Some(1));
    Ok(())
}

#[tokio::test]
async fn the_queue_sends_everything_before_drain_returns() -> anyhow::Result<()> {
    let ns = TestNamespace::create("events-queue").await?;
    let sink = EventSink::new(ns.client(), engine(&ns), true);
    let pending = chaos_runner::cluster::events::PendingEvents::default();
    let queue = EventQueue::spawn(std::sync::Arc::new(sink), pending.clone());
    for i in 0..20 {
        queue.emit(report(&format!("k{i}"), &format!("message {i}")));
    }
    assert!(pending.contains("k19"), "queued and not sent yet: pending");
    queue.drain().await;
    let found = events(&ns).await?;
    assert_eq!(found.len(), 20, "every queued Event is written by drain");
    // Sent: no longer pending, so the trail may let their transitions go.
    assert!((0..20).all(|i| !pending.contains(&format!("k{i}"))));
    Ok(())
}
