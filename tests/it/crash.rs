//! A `glassbox index` killed with SIGKILL at random moments leaves a library that opens cleanly
//! (no stale lock), whose catalog and index agree, and that the next run completes.

use crate::common::*;
use glassbox::Library;
use glassbox::bench::corpus::{Rng, generate};
use std::process::Stdio;
use std::time::Duration;

#[tokio::test]
async fn killed_indexing_is_recovered() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    generate(&corpus, 3 << 20, 11).unwrap();
    let lib_dir = tmp.path().join("lib");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = Rng::new(seed);
    for round in 0..5 {
        // New files each round, so every run has work to be interrupted in.
        generate(
            &corpus.join(format!("round{round}")),
            256 << 10,
            seed ^ round,
        )
        .unwrap();
        let mut child = glassbox()
            .arg("--data-dir")
            .arg(&lib_dir)
            .arg("index")
            .arg(&corpus)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let delay = Duration::from_millis(30 + rng.below(1500) as u64);
        tokio::time::sleep(delay).await;
        child.kill().unwrap();
        child.wait().unwrap();

        let library = Library::open(&lib_dir)
            .await
            .unwrap_or_else(|e| panic!("seed {seed} round {round} ({delay:?}): cannot open: {e}"));
        let check = library.check_consistency().await.unwrap();
        assert_eq!(
            check,
            Default::default(),
            "seed {seed} round {round} ({delay:?})"
        );
        library.close().await;
    }

    succeed(
        glassbox()
            .arg("--data-dir")
            .arg(&lib_dir)
            .arg("index")
            .arg(&corpus),
    );

    let resumed = Library::open(&lib_dir).await.unwrap();
    assert_consistent(&resumed).await;
    let reference = Library::open(&tmp.path().join("reference")).await.unwrap();
    index(&reference, std::slice::from_ref(&corpus)).await;
    let counts = |status: glassbox::library::LibraryStatus| {
        let folder = &status.folders[0];
        (
            status.folders.len(),
            folder.indexed,
            folder.failed,
            folder.chunks,
        )
    };
    assert_eq!(
        counts(resumed.status().await.unwrap()),
        counts(reference.status().await.unwrap()),
        "seed {seed}"
    );
    assert_eq!(
        resumed.search_index().num_chunks(),
        reference.search_index().num_chunks()
    );
}
