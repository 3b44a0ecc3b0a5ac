//! The animals of the whiskers demo, shared by its three components (each
//! includes this file with `#[path]`): the only votes `whiskers_vote` queues,
//! `whiskers_tally` counts and `whiskers_scores` reports, in report order.

pub const ANIMALS: [&str; 4] = ["cat", "dog", "rabbit", "chicken"];

/// The key-value key that holds an animal's count, as a decimal string.
pub fn tally_key(animal: &str) -> String {
    format!("tally:{animal}")
}

/// A stored count; `None` if the value is not a decimal number.
pub fn parse_count(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value).ok()?.parse().ok()
}
