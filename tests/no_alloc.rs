//! A warm `Transformer` does not touch the heap: every record of the fixture corpus is
//! transformed a second time while a counting global allocator watches.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use envoy_dd::{Config, TraceIdFormat, Transformer};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn corpus() -> Vec<Vec<u8>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/input");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("fixtures/input exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    let mut records = Vec::new();
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        records.extend(
            bytes
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(<[u8]>::to_vec),
        );
    }
    assert!(
        records.len() > 100,
        "the corpus is too small to prove anything"
    );
    records
}

/// Counts the allocations `f` makes. (One test function only: the counter is global, and
/// tests in one binary run on parallel threads.)
fn allocations(f: impl FnOnce()) -> usize {
    ALLOCATIONS.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    f();
    COUNTING.store(false, Ordering::Relaxed);
    ALLOCATIONS.load(Ordering::Relaxed)
}

#[test]
fn warm_transformer_does_not_allocate() {
    // The counter itself works (so the assertion below can fail).
    assert!(allocations(|| drop(Vec::<u8>::with_capacity(std::hint::black_box(64)))) >= 1);

    let records = corpus();
    for config in [
        Config {
            hash: Some("4f9c2a17e0b3".into()),
            phase: Some("canary".into()),
            ..Config::default()
        },
        Config {
            trace_id_128: TraceIdFormat::Hex,
            ..Config::default()
        },
    ] {
        let mut transformer = Transformer::new(config);
        let mut out = Vec::new();
        // Warm-up: buffers grow to the largest record's needs.
        for record in &records {
            out.clear();
            transformer.transform(record, &mut out);
        }
        let counted = allocations(|| {
            for record in &records {
                out.clear();
                transformer.transform(record, &mut out);
            }
        });
        assert_eq!(
            counted,
            0,
            "allocations over {} warm records",
            records.len()
        );
    }
}
