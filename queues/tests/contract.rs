//! The contract cannot drift: every example is checked against the JSON Schema and against the
//! Rust type, and the two must agree on every one of them.

use std::path::{Path, PathBuf};

use babybook_jobs::JobMessage;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(crate_dir().join("schema/job-message.v1.json")).expect("schema file");
    let schema: serde_json::Value = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::draft202012::new(&schema).expect("schema compiles")
}

fn examples(kind: &str) -> Vec<(PathBuf, String)> {
    let dir = crate_dir().join("examples").join(kind);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 5,
        "expected several {kind} examples in {}",
        dir.display()
    );
    files
        .into_iter()
        .map(|p| {
            let t = std::fs::read_to_string(&p).expect("example");
            (p, t)
        })
        .collect()
}

fn name(path: &Path) -> String {
    path.file_name().unwrap_or_default().to_string_lossy().into_owned()
}

#[test]
fn every_valid_example_passes_the_schema_and_round_trips_through_the_type() {
    let validator = schema();
    for (path, text) in examples("valid") {
        let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", name(&path)));
        let errors: Vec<String> = validator.iter_errors(&value).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{} fails the schema: {errors:?}", name(&path));

        let message = JobMessage::parse(&text).unwrap_or_else(|e| panic!("{} fails the type: {e}", name(&path)));
        let reserialized: serde_json::Value = serde_json::from_str(&message.to_json()).expect("json");
        assert!(
            validator.is_valid(&reserialized),
            "{}: what the producer writes fails the schema",
            name(&path)
        );
        assert_eq!(
            JobMessage::parse(&message.to_json()).as_ref(),
            Ok(&message),
            "{} does not round-trip",
            name(&path)
        );
    }
}

#[test]
fn every_invalid_example_is_refused_by_both_the_schema_and_the_type() {
    let validator = schema();
    for (path, text) in examples("invalid") {
        let schema_refuses = match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(value) => !validator.is_valid(&value),
            Err(_) => true,
        };
        assert!(schema_refuses, "{} passes the schema", name(&path));
        assert!(JobMessage::parse(&text).is_err(), "{} passes the type", name(&path));
    }
}

#[test]
fn every_job_type_in_the_schema_has_a_valid_example() {
    let types: std::collections::BTreeSet<String> = examples("valid")
        .iter()
        .map(|(_, text)| JobMessage::parse(text).expect("valid").job_type().as_str().to_owned())
        .collect();
    let text = std::fs::read_to_string(crate_dir().join("schema/job-message.v1.json")).expect("schema");
    let schema: serde_json::Value = serde_json::from_str(&text).expect("json");
    let declared: std::collections::BTreeSet<String> = schema["properties"]["job_type"]["enum"]
        .as_array()
        .expect("enum")
        .iter()
        .map(|v| v.as_str().expect("string").to_owned())
        .collect();
    assert_eq!(types, declared);
}
