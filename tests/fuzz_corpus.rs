//! Replays the fuzzing corpus (`fuzz/corpus/<target>/`) through the same entry
//! points the fuzz targets call (`gatewayd::fuzz`), on the stable build: an
//! input that once crashed a parser stays in the corpus and keeps failing this
//! test if the crash comes back. Each input must also finish quickly: a parser
//! that takes seconds on a few kilobytes is a denial of service.

use std::time::{Duration, Instant};

use crate::harness::repo_root;

#[test]
fn every_corpus_input_is_handled_without_a_panic() {
    let corpus = repo_root().join("fuzz/corpus");
    let mut replayed = 0;
    for (target, entry) in gatewayd::fuzz::TARGETS {
        let dir = corpus.join(target);
        let files = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|f| f.unwrap().path());
        for file in files {
            let data = std::fs::read(&file).unwrap();
            let started = Instant::now();
            entry(&data);
            let took = started.elapsed();
            assert!(
                took < Duration::from_secs(2),
                "{target} took {took:?} on {}",
                file.display()
            );
            replayed += 1;
        }
    }
    // Every target has a corpus (a missing folder would replay nothing).
    assert!(replayed >= gatewayd::fuzz::TARGETS.len() * 3, "{replayed}");
}
