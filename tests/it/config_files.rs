//! Configuration: the annotated example stays true to the defaults, and the layers apply in
//! order (file < environment < flags).

use std::collections::BTreeSet;

use ffarm::config::{ChunkingConfig, Config};
use ffarm::job::Chunking;

#[test]
fn the_example_file_loads_and_states_the_defaults() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ffarm.example.toml");
    let loaded = Config::load(Some(&example), serde_json::json!({})).unwrap();
    assert_eq!(
        loaded,
        Config::default(),
        "the values written in the example are the defaults"
    );
    // Every key of the configuration appears in the example, commented out or not.
    let text = std::fs::read_to_string(&example).unwrap();
    let defaults = serde_json::to_value(Config::default()).unwrap();
    let mut keys = BTreeSet::new();
    for (k, v) in defaults.as_object().unwrap() {
        match v.as_object() {
            Some(section) if k != "buckets" => keys.extend(section.keys().cloned()),
            _ => {
                keys.insert(k.clone());
            }
        }
    }
    for key in keys {
        let mentioned = text.contains(&format!("{key} =")) || text.contains(&format!("[{key}"));
        assert!(mentioned, "ffarm.example.toml does not mention `{key}`");
        let var = format!("FFARM_{}", key.to_uppercase());
        assert!(
            text.contains(&var)
                || text
                    .to_uppercase()
                    .contains(&format!("__{}", key.to_uppercase())),
            "ffarm.example.toml does not name the variable for `{key}`"
        );
    }
}

#[test]
fn layers_apply_in_order_and_mistakes_are_named() {
    let dir = crate::helpers::tempdir();
    let file = dir.path().join("ffarm.toml");
    std::fs::write(
        &file,
        "workers = 3\n[worker]\nlease_seconds = 40\n[buckets.cloud]\nurl = \"s3://x\"\n",
    )
    .unwrap();
    let c = Config::load(Some(&file), serde_json::json!({})).unwrap();
    assert_eq!((c.workers, c.worker.lease_seconds), (Some(3), 40));
    assert_eq!(c.buckets["cloud"].url, "s3://x");
    let c = Config::load(Some(&file), serde_json::json!({"workers": 5})).unwrap();
    assert_eq!(c.workers, Some(5), "flags beat the file");
    std::fs::write(&file, "wokers = 3\n").unwrap();
    let err = Config::load(Some(&file), serde_json::json!({}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("wokers"), "{err}");
    std::fs::write(&file, "[worker]\nlease_seconds = 1\n").unwrap();
    let err = Config::load(Some(&file), serde_json::json!({}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("lease_seconds"), "{err}");
    std::fs::write(&file, "[destinations]\non_failure = \"ftp://hooks/dead\"\n").unwrap();
    let err = Config::load(Some(&file), serde_json::json!({}))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("destinations.on_failure") && err.contains("http"),
        "{err}"
    );
    let err = Config::load(
        Some(&dir.path().join("missing.toml")),
        serde_json::json!({}),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("no such file"), "{err}");
}

#[test]
fn ffarm_config_shows_file_environment_and_flags_in_order() {
    let dir = crate::helpers::tempdir();
    let file = dir.path().join("ffarm.toml");
    std::fs::write(
        &file,
        "workers = 3\ntoken = \"a-very-secret-token-1234\"\n[worker]\nlease_seconds = 40\nstop_grace_seconds = 7\n\
         [buckets.cloud]\nurl = \"s3://x\"\noptions = { aws_secret_access_key = \"hunter2\" }\n",
    )
    .unwrap();
    let out = std::process::Command::new(crate::helpers::ffarm_bin())
        .args(["config", "--config"])
        .arg(&file)
        .args(["--workers", "5"])
        .env("FFARM_WORKER__LEASE_SECONDS", "50")
        .env("FFARM_RETRY__BASE_SECONDS", "0.5")
        .env("FFARM_LOG", "info")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: toml::Value = toml::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
    assert_eq!(
        shown["workers"].as_integer(),
        Some(5),
        "a flag beats the file"
    );
    assert_eq!(
        shown["worker"]["lease_seconds"].as_integer(),
        Some(50),
        "the environment beats the file"
    );
    assert_eq!(
        shown["worker"]["stop_grace_seconds"].as_integer(),
        Some(7),
        "the file beats the default"
    );
    assert_eq!(shown["retry"]["base_seconds"].as_float(), Some(0.5));
    assert_eq!(
        shown["token"].as_str(),
        Some("********"),
        "secrets are masked"
    );
    assert_eq!(
        shown["buckets"]["cloud"]["options"]["aws_secret_access_key"].as_str(),
        Some("********")
    );
}

/// Loads `text` as ffarm.toml: the configuration, or the error's key and message.
fn load(text: &str) -> Result<Config, (String, String)> {
    let dir = crate::helpers::tempdir();
    let file = dir.path().join("ffarm.toml");
    std::fs::write(&file, text).unwrap();
    Config::load(Some(&file), serde_json::json!({})).map_err(|e| (e.key(), e.to_string()))
}

#[test]
fn the_chunking_section_has_defaults_and_takes_each_key() {
    let c = load("").unwrap();
    assert_eq!(
        c.chunking,
        ChunkingConfig {
            segment_seconds: 60,
            min_seconds: 240,
            max_parallel: 0,
            scratch_bucket: None,
        }
    );
    let c = load(
        "[buckets.scratch]\nurl = \"file:///tmp/scratch\"\n[chunking]\nsegment_seconds = 30\n\
         min_seconds = 120\nmax_parallel = 4\nscratch_bucket = \"scratch\"\n",
    )
    .unwrap();
    assert_eq!(
        c.chunking,
        ChunkingConfig {
            segment_seconds: 30,
            min_seconds: 120,
            max_parallel: 4,
            scratch_bucket: Some("scratch".into()),
        }
    );
    assert_eq!(c.chunking.scratch_bucket("media"), "scratch");
    assert_eq!(ChunkingConfig::default().scratch_bucket("media"), "media");
    // The part length a job gets: its own, the farm's for auto, none when off.
    let own = Chunking::Segments {
        segment_seconds: 12,
    };
    assert_eq!(c.chunking.segment_seconds(own), Some(12));
    assert_eq!(c.chunking.segment_seconds(Chunking::Auto), Some(30));
    assert_eq!(c.chunking.segment_seconds(Chunking::Off), None);
}

#[test]
fn bad_chunking_values_name_their_key() {
    for (text, key, says) in [
        (
            "[chunking]\nsegment_seconds = 1\n",
            "chunking.segment_seconds",
            "must be at least 2, not 1",
        ),
        (
            "[chunking]\nscratch_bucket = \"nowhere\"\n",
            "chunking.scratch_bucket",
            "'nowhere' is not a configured bucket (configured: none)",
        ),
        (
            "[chunking]\nmax_parallel = -1\n",
            "chunking.max_parallel",
            "invalid value",
        ),
        (
            "[chunking]\nsegment_secs = 30\n",
            "chunking.segment_secs",
            "unknown field: found `segment_secs`",
        ),
        (
            "[[triggers]]\nbucket = \"media\"\npresets = [\"mp4\"]\nchunking = \"sometimes\"\n",
            "triggers.0.chunking",
            "\"sometimes\"",
        ),
    ] {
        let (got_key, message) = load(text).unwrap_err();
        assert_eq!(got_key, key, "{message}");
        assert!(message.contains(says), "{message}");
    }
}

#[test]
fn chunking_comes_from_the_environment_too() {
    let out = std::process::Command::new(crate::helpers::ffarm_bin())
        .args(["config"])
        .current_dir(crate::helpers::tempdir().path())
        .env("FFARM_CHUNKING__SEGMENT_SECONDS", "20")
        .env("FFARM_CHUNKING__MAX_PARALLEL", "3")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: toml::Value = toml::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
    assert_eq!(shown["chunking"]["segment_seconds"].as_integer(), Some(20));
    assert_eq!(shown["chunking"]["max_parallel"].as_integer(), Some(3));
    assert_eq!(shown["chunking"]["min_seconds"].as_integer(), Some(240));
}

#[test]
fn a_rule_may_say_how_its_jobs_split() {
    let c = load(
        "[[triggers]]\nbucket = \"media\"\npresets = [\"mp4\"]\nchunking = { segment_seconds = 20 }\n\
         [[triggers]]\nbucket = \"other\"\npresets = [\"mp4\"]\nchunking = \"off\"\n\
         [[triggers]]\nbucket = \"third\"\npresets = [\"mp4\"]\n",
    )
    .unwrap();
    let chunking: Vec<_> = c.triggers.iter().map(|r| r.chunking).collect();
    assert_eq!(
        chunking,
        [
            Some(Chunking::Segments {
                segment_seconds: 20
            }),
            Some(Chunking::Off),
            None
        ]
    );
}
