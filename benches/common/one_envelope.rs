//! The App Mesh records as one log router sees them: a FireLens log router serves the
//! containers of one task, so every record of the Envoy container has the same envelope.
//! `fixtures/input/firelens-appmesh.jsonl` gives each record another container and task, to
//! vary what the transform reads; this stream keeps each record's `log` and gives it the
//! first record's envelope. `benches/transform.rs` measures it natively, and
//! `tests/fluent_bit_wasm.rs` counts it in the interpreter.

/// `records` (JSON objects with a `log` member), each with the first one's other members.
pub fn one_envelope<'a>(records: impl IntoIterator<Item = &'a [u8]>) -> Vec<Vec<u8>> {
    let mut first: Option<serde_json::Map<String, serde_json::Value>> = None;
    records
        .into_iter()
        .map(|record| {
            let record: serde_json::Value = serde_json::from_slice(record).expect("a JSON record");
            let envelope =
                first.get_or_insert_with(|| record.as_object().cloned().expect("an object"));
            // Key order is kept (serde_json's `preserve_order`), and so is `log`'s place.
            let mut same = envelope.clone();
            same.insert("log".into(), record["log"].clone());
            serde_json::to_vec(&same).expect("serialisable")
        })
        .collect()
}
