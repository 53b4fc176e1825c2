//! The S3 path end to end against a real S3-compatible server on loopback (moto, installed
//! from PyPI by `./dev.sh test` into target/test-tools): input downloaded from a bucket,
//! outputs uploaded (multipart for a large one), keys checked.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ffarm::buckets::{BucketConfig, Buckets};
use ffarm::job::Status;
use ffarm::media::StopToken;

use crate::helpers::{ffprobe, ffprobe_streams, test_tool, valid};
use crate::worker_harness::{Backend, Farm, long_clip};

/// A moto S3 server on a free loopback port.
struct S3Server {
    child: Child,
    endpoint: String,
}

impl S3Server {
    fn start() -> S3Server {
        let program = std::env::var("FFARM_TEST_MOTO_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|_| test_tool("moto_server"));
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let endpoint = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "moto did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        S3Server { child, endpoint }
    }

    async fn create_bucket(&self, name: &str) {
        let r = reqwest::Client::new()
            .put(format!("{}/{name}", self.endpoint))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "create bucket: {}", r.status());
    }

    fn bucket(&self, name: &str) -> BucketConfig {
        let options: BTreeMap<String, String> = [
            ("aws_endpoint", self.endpoint.as_str()),
            ("aws_region", "us-east-1"),
            ("aws_access_key_id", "testing"),
            ("aws_secret_access_key", "testing"),
            ("aws_allow_http", "true"),
            ("aws_virtual_hosted_style_request", "false"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        BucketConfig {
            url: format!("s3://{name}"),
            options,
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_input_and_outputs_end_to_end() {
    let s3 = S3Server::start();
    s3.create_bucket("cloud").await;
    let mut farm = Farm::new(Backend::Sqlite).await;
    let mut config = farm.config();
    config.buckets.insert("cloud".into(), s3.bucket("cloud"));
    let buckets = Buckets::new(farm.data.path(), config.buckets.clone()).unwrap();
    let stop = StopToken::new();
    // Uploads: a small one in one request, a large one (20 MB) in parts.
    buckets
        .upload(
            "cloud",
            "uploads/clip one.mp4",
            &valid("h264_aac.mp4"),
            &stop,
            &mut |_, _| {},
        )
        .await
        .unwrap();
    let big = buckets
        .upload(
            "cloud",
            "uploads/long.mp4",
            &long_clip(),
            &stop,
            &mut |_, _| {},
        )
        .await
        .unwrap();
    assert!(
        big > ffarm::buckets::MULTIPART_THRESHOLD,
        "the large upload went in parts"
    );
    assert_eq!(
        buckets.size("cloud", "uploads/long.mp4").await.unwrap(),
        big
    );
    farm.start_in_process(config);
    let web = farm
        .submit("uploads/clip one.mp4", "hls-720p", |s| {
            s.input.bucket = "cloud".into();
            s.output.bucket = "cloud".into();
            s.output.prefix = "renditions/one/".into();
        })
        .await;
    // A remux of the long clip: a large output, uploaded in parts.
    let copy = farm
        .submit("uploads/long.mp4", "remux-mkv", |s| {
            s.input.bucket = "cloud".into();
            s.output.bucket = "cloud".into();
            s.output.prefix = "copies/".into();
        })
        .await;
    for id in [&web.id, &copy.id] {
        let done = farm.wait_terminal(id, Duration::from_secs(120)).await;
        assert_eq!(done.status, Status::Succeeded, "{id}: {:?}", done.error);
    }
    let web = farm.store.get(&web.id).await.unwrap();
    let keys: Vec<&str> = web.outputs.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(
        keys.last(),
        Some(&"renditions/one/clip one.m3u8"),
        "the playlist is published last: {keys:?}"
    );
    assert!(keys.iter().any(|k| k.ends_with("clip one_00000.ts")));
    // Every output is really in the bucket, whole.
    let dir = crate::helpers::tempdir();
    for o in &web.outputs {
        assert_eq!(
            buckets.size("cloud", &o.key).await.unwrap(),
            o.bytes,
            "{}",
            o.key
        );
        let local = dir.path().join(o.key.rsplit('/').next().unwrap());
        buckets
            .download("cloud", &o.key, &local, &stop, &mut |_, _| {})
            .await
            .unwrap();
    }
    let playlist = std::fs::read_to_string(dir.path().join("clip one.m3u8")).unwrap();
    assert!(playlist.contains("clip one_00000.ts"));
    let seg = ffprobe(&dir.path().join("clip one_00000.ts"));
    assert_eq!(ffprobe_streams(&seg, "video")[0]["codec_name"], "h264");
    let copy = farm.store.get(&copy.id).await.unwrap();
    assert_eq!(copy.outputs.len(), 1);
    assert!(
        copy.outputs[0].bytes > ffarm::buckets::MULTIPART_THRESHOLD,
        "{:?}",
        copy.outputs
    );
    assert_eq!(
        buckets.size("cloud", "copies/long.mkv").await.unwrap(),
        copy.outputs[0].bytes
    );
    // A missing object and a hostile key are refused clearly.
    let missing = farm
        .submit("uploads/nope.mp4", "mp4", |s| {
            s.input.bucket = "cloud".into();
        })
        .await;
    let done = farm
        .wait_terminal(&missing.id, Duration::from_secs(60))
        .await;
    assert_eq!(done.error.unwrap().code, "object-not-found");
    let err = buckets.size("cloud", "../etc/passwd").await.unwrap_err();
    assert_eq!(err.code(), "bad-key");
    farm.cleanup().await;
}
