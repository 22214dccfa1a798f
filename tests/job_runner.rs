//! Host tests of the job runner (`babybook_edge::jobs::runner`): one batch through the in-memory
//! port of `tests/support/job_world.rs`, each step chosen by hand. The interleavings at large are
//! the `job_lifecycle` property test's (tests/fuzz.rs).

#[path = "support/job_world.rs"]
#[allow(dead_code)] // the parts only the property test drives
mod job_world;

use babybook_edge::jobs::port::Subject;
use babybook_jobs::lifecycle::RowStatus;
use babybook_jobs::Id;
use job_world::{Action, Model, Pass, Script, LEASE_MS};

fn script(then_definitive: bool) -> Script {
    Script {
        running_first: 0,
        transient_first: 0,
        then_definitive,
    }
}

/// A world whose only leased job on the queue is the transcode (the first message), its media
/// worker answering 200, or 422 when `definitive`.
fn transcode_world(definitive: bool) -> (Model, Id) {
    let mut scripts = [script(false); 5];
    scripts[0] = script(definitive);
    let model = Model::new(scripts, [true, false, false, false, false], false);
    let asset = Subject::of(&model.jobs.transcode.job)
        .expect("a transcode leases its asset")
        .raw();
    (model, asset)
}

fn messages(model: &Model) -> Vec<String> {
    let w = model.world.borrow();
    w.lines
        .iter()
        .filter_map(|l| l.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .collect()
}

#[test]
fn a_transcode_the_media_worker_finished_is_recorded_ready_and_then_acked() {
    let (model, asset) = transcode_world(false);
    let mut model = model.without_faults();

    model.step(Action::Deliver { size: 1 });

    let w = model.world.borrow();
    assert_eq!(w.row(asset), Some((RowStatus::Ready, None)), "the row");
    assert_eq!(
        w.calls,
        ["claim", "run_job", "record", "ack"],
        "the port calls, in order"
    );
    assert_eq!(w.dlq_and_in_flight(), (0, 0), "dead letters, messages in flight");
    assert!(w.violations.is_empty(), "{:?}", w.violations);
    drop(w);
    assert_eq!(messages(&model), ["job done"]);
}

#[test]
fn a_definitive_failure_is_dead_lettered_before_the_row_is_marked_failed() {
    let (model, asset) = transcode_world(true);
    let mut model = model.without_faults();

    model.step(Action::Deliver { size: 1 });

    let w = model.world.borrow();
    assert_eq!(
        w.calls,
        ["claim", "run_job", "dead_letter", "ack", "mark_failed"],
        "the dead letter goes first; the row is marked only after it"
    );
    assert_eq!(w.row(asset), Some((RowStatus::Failed, None)), "the row");
    assert_eq!(w.dlq_and_in_flight(), (1, 0), "dead letters, messages in flight");
    assert!(w.violations.is_empty(), "{:?}", w.violations);
    drop(w);
    assert_eq!(messages(&model), ["job dead"]);
}

#[test]
fn a_delivery_that_lost_its_lease_before_recording_writes_nothing_and_says_job_lease_lost() {
    let (mut model, asset) = transcode_world(false);
    let resume = Action::Resume {
        pick: 0,
        pass: Pass::Ok,
    };
    model.step(Action::Deliver { size: 1 });
    model.step(resume); // the claim: won; the media call waits
    model.step(Action::Wait { ms: LEASE_MS + 1 });
    model.world.borrow_mut().lease_to(asset, "another delivery");

    model.step(resume); // the media worker's answer: done
    model.step(resume); // the record, fenced by the lease

    let w = model.world.borrow();
    assert_eq!(
        w.row(asset),
        Some((RowStatus::Processing, Some("another delivery".to_owned()))),
        "the row stays the new holder's"
    );
    assert_eq!(
        w.calls,
        ["claim", "run_job", "record", "ack"],
        "the port calls, in order"
    );
    assert_eq!(w.dlq_and_in_flight(), (0, 0), "dead letters, messages in flight");
    let lost = w
        .lines
        .iter()
        .find(|l| l.get("message").and_then(|m| m.as_str()) == Some("job lease lost"))
        .expect("a `job lease lost` line");
    assert_eq!(lost.get("write").and_then(|v| v.as_str()), Some("finish"));
    drop(w);
    assert_eq!(messages(&model), ["job lease lost", "job skipped"]);
}
