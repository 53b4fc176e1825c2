//! `ffarm show` on split jobs, as a user runs it against a real `ffarm serve`: jobs split
//! through the store's own API into the server's SQLite file, then the parts table (ranges,
//! states, attempts, workers, progress, a failed part's error) read from stdout, within 80
//! columns, and `--json` the job document with its `parts`.

use serde_json::Value;

use crate::cli_client::Server;
use crate::parts_seed;

/// The table's rows under the `parts` line, split into their columns.
fn part_rows(text: &str) -> Vec<Vec<String>> {
    let table = text
        .split("\nparts  ")
        .nth(1)
        .unwrap_or_else(|| panic!("no parts section in:\n{text}"));
    table
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with("  ") && !l.trim_start().starts_with("part "))
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect()
}

fn row(columns: &[&str]) -> Vec<String> {
    columns.iter().map(|c| c.to_string()).collect()
}

#[test]
fn cli_client_show_lists_a_split_jobs_parts() {
    let s = Server::start(0, None);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = ffarm::store::open(&s.store_url()).await.unwrap();
        parts_seed::seed(store.as_ref()).await;
        let plain = crate::helpers::spec("in/plain.mp4");
        store.submit(Some("plain".into()), plain).await.unwrap();
    });

    let text = s.run(&["show", "split-run"]).expect(0).stdout.clone();
    assert!(
        text.contains("\nparts  6 video parts: 2 queued, 2 running, 2 succeeded\n"),
        "{text}"
    );
    let header = text.lines().find(|l| l.trim_start().starts_with("PART"));
    assert_eq!(
        header.map(|h| h.split_whitespace().collect::<Vec<_>>()),
        Some(vec![
            "PART", "KIND", "RANGE", "STATUS", "ATTEMPT", "WORKER", "PROGRESS"
        ]),
        "{text}"
    );
    assert_eq!(
        part_rows(&text),
        vec![
            row(&[
                "0",
                "video",
                "0:00:00-0:00:30",
                "succeeded",
                "1/3",
                "w-a/1",
                "done"
            ]),
            row(&[
                "1",
                "video",
                "0:00:30-0:01:00",
                "succeeded",
                "1/3",
                "w-b/1",
                "done"
            ]),
            row(&[
                "2",
                "video",
                "0:01:00-0:01:30",
                "running",
                "1/3",
                "w-c/1",
                "40%"
            ]),
            row(&[
                "3",
                "video",
                "0:01:30-0:02:00",
                "running",
                "1/3",
                "w-a/1",
                "75%"
            ]),
            row(&["4", "video", "0:02:00-0:02:30", "queued", "-", "-", "-"]),
            row(&["5", "video", "0:02:30-0:02:45", "queued", "-", "-", "-"]),
            // Handed back by the worker that held it: queued again, its last worker shown.
            row(&[
                "6",
                "audio",
                "0:00:00-0:02:45",
                "queued",
                "1/3",
                "w-d/1",
                "-"
            ]),
            row(&["7", "assemble", "0:00:00-0:02:45", "queued", "-", "-", "-"]),
        ],
        "{text}"
    );
    let section = text
        .split("\nparts  ")
        .nth(1)
        .unwrap()
        .split("\nhistory")
        .next();
    for line in section.unwrap().lines() {
        assert!(line.chars().count() <= 80, "wider than 80 columns: {line}");
    }

    let failed = s.run(&["show", "split-bad"]).expect(0).stdout.clone();
    let rows = part_rows(&failed);
    let states: Vec<&str> = rows.iter().map(|r| r[3].as_str()).collect();
    assert_eq!(
        states,
        ["succeeded", "failed", "cancelled", "cancelled", "cancelled"],
        "{failed}"
    );
    assert!(
        failed.contains("  part 1: the encoder refused the frame [encode-failed]\n"),
        "{failed}"
    );

    // --json is the job document, parts included.
    let json = s.run(&["show", "split-run", "--json"]).expect(0).json();
    let document: Value = runtime.block_on(async {
        let url = format!("{}/v1/jobs/split-run", s.url);
        reqwest::get(url).await.unwrap().json().await.unwrap()
    });
    assert_eq!(json, document);
    let parts = json["parts"].as_array().expect("parts");
    assert_eq!(parts.len(), 8);
    assert_eq!(parts[2]["worker"], "w-c/1");
    assert_eq!(parts[2]["progress"]["percent"], 40.0);
    assert_eq!(parts[7]["kind"], "assemble");

    // A job that is not split shows no parts section, and its document no parts field.
    let plain = s.run(&["show", "plain"]).expect(0).stdout.clone();
    assert!(!plain.contains("parts"), "{plain}");
    let plain = s.run(&["show", "plain", "--json"]).expect(0).json();
    assert_eq!(plain["status"], "queued");
    assert!(plain.get("parts").is_none(), "{plain}");
}
