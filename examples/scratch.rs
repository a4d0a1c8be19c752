use std::io::BufRead;
fn main() {
    let mut t = envoy_dd::Transformer::new(envoy_dd::Config { hash: Some("abc".into()), phase: None, ..Default::default() });
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        if line.starts_with('#') || line.is_empty() { continue; }
        let mut out = Vec::new();
        let o = t.transform(line.as_bytes(), &mut out);
        println!("{:?}\n{}\n", o, String::from_utf8_lossy(&out));
    }
}
