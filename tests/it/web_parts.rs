//! A split job's parts on the progress page, in Chromium (`tests/browser/parts.mjs`): jobs
//! split through the store's own API into the server's SQLite file before it starts, then,
//! while the page watches, a part finished and another moved on through the same store from
//! this process, which the page must show without a reload.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::helpers::tempdir;
use crate::parts_seed;
use crate::web_page::Served;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn store_url(data: &Path) -> String {
    format!("sqlite://{}", data.join("ffarm.db").display())
}

#[test]
fn web_page_split_job_parts() {
    let mut seeded = None;
    let served = Served::start(0, None, |data| {
        seeded = Some(runtime().block_on(async {
            let store = ffarm::store::open(&store_url(data)).await.unwrap();
            parts_seed::seed(store.as_ref()).await
        }));
    });
    let (running, later) = seeded.unwrap();
    let signals = tempdir();
    let ready = signals.path().join("ready");
    std::thread::scope(|s| {
        let page = s.spawn(|| served.browse("parts.mjs", &[ready.display().to_string()]));
        // The script writes `ready` once it has checked the strip as seeded.
        let deadline = Instant::now() + Duration::from_secs(120);
        while !ready.exists() && !page.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if ready.exists() {
            runtime().block_on(async {
                let store = ffarm::store::open(&store_url(&served.data()))
                    .await
                    .unwrap();
                parts_seed::succeed(store.as_ref(), &running).await;
                parts_seed::advance(store.as_ref(), &later, 90.0).await;
            });
        }
        if let Err(panic) = page.join() {
            std::panic::resume_unwind(panic);
        }
    });
    assert!(ready.exists(), "the script never got to the live change");
}
