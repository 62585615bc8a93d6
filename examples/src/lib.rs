//! Examples live under examples/*.rs; run them with `cargo run -p tributary-examples --example NAME`.
