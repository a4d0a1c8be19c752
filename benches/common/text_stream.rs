//! The generated stream of FireLens records with Envoy default-format access logs that
//! `benches/text.rs` measures, and `tests/fluent_bit_wasm.rs` counts in the interpreter.

/// How many records the stream has.
pub const LINES: usize = 2000;

/// A FireLens record around `log`, as the Docker fluentd driver and FireLens write it.
pub fn firelens(log: &str) -> Vec<u8> {
    let mut record = String::from(
        r#"{"container_id":"4343d98044d26a3a3fd4ce3fb90e084220b3db26d16b212cd3556f8f84997872","container_name":"/ecs-api-canary-42-envoy-586ec283ee569bfaef62","source":"stdout","log":""#,
    );
    for c in log.chars() {
        match c {
            '"' => record.push_str("\\\""),
            '\\' => record.push_str("\\\\"),
            '\n' => record.push_str("\\n"),
            c => record.push(c),
        }
    }
    record.push_str(r#"","ecs_cluster":"arn:aws:ecs:us-east-1:123456789012:cluster/prod","ecs_task_arn":"arn:aws:ecs:us-east-1:123456789012:task/prod/0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e","ecs_task_definition":"api-canary:42"}"#);
    record.into_bytes()
}

/// Envoy default-format lines, each ending in `\n` as Envoy writes them.
pub fn default_lines() -> Vec<String> {
    let mut rng = Lcg(20240603);
    let methods = ["GET", "GET", "GET", "POST", "PUT", "DELETE"];
    let paths = [
        "/users/{}",
        "/orders/{}?expand=items",
        "/ping",
        "/api/v1/carts/{}/items",
        "/search?q=shoes&page={}",
    ];
    let outcomes = [
        ("200", "-"),
        ("200", "-"),
        ("201", "-"),
        ("304", "-"),
        ("404", "NR"),
        ("503", "UH"),
        ("0", "DC"),
    ];
    let agents = [
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15",
        "okhttp/4.12.0",
        "Envoy/HC",
        "-",
    ];
    (0..LINES)
        .map(|i| {
            let (code, flags) = outcomes[rng.below(outcomes.len())];
            let path = paths[rng.below(paths.len())].replace("{}", &rng.below(100_000).to_string());
            let xff = match rng.below(3) {
                0 => "-".to_string(),
                _ => format!("203.0.113.{}, 10.0.{}.{}", rng.below(255), rng.below(255), rng.below(255)),
            };
            format!(
                "[2024-06-03T14:{:02}:{:02}.{:03}Z] \"{} {} HTTP/1.1\" {} {} {} {} {} {} \"{}\" \"{}\" \"{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}\" \"api.example.com\" \"10.0.{}.{}:8080\"\n",
                i / 60 % 60,
                i % 60,
                rng.below(1000),
                methods[rng.below(methods.len())],
                path,
                code,
                flags,
                rng.below(4096),
                rng.below(65536),
                rng.below(3000),
                rng.below(3000),
                xff,
                agents[rng.below(agents.len())],
                rng.next() as u32,
                rng.below(0x10000),
                rng.below(0x1000),
                rng.below(0x1000),
                rng.next() & 0xffff_ffff_ffff,
                rng.below(255),
                rng.below(255),
            )
        })
        .collect()
}

/// A small deterministic generator (Knuth's MMIX LCG), so the bench needs no `rand`.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 16
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
