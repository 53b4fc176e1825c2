//! The S3 path end to end against a real S3-compatible server on loopback (moto, installed
//! from PyPI by `./dev.sh test` into target/test-tools): input downloaded from a bucket,
//! outputs uploaded (multipart for a large one, in the parts it should have), keys checked,
//! credentials from the environment, failed multipart uploads aborted, a stop while uploading
//! leaving nothing behind, objects copied within and across buckets.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ffarm::buckets::{BucketConfig, Buckets};
use ffarm::job::Status;
use ffarm::stop::StopToken;

use crate::helpers::{ffprobe, ffprobe_streams, test_tool, valid};
use crate::worker_harness::{Backend, Farm, long_clip};

/// A moto S3 server on a free loopback port.
pub struct S3Server {
    child: Child,
    pub endpoint: String,
}

impl S3Server {
    pub fn start() -> S3Server {
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

    pub async fn create_bucket(&self, name: &str) {
        let r = reqwest::Client::new()
            .put(format!("{}/{name}", self.endpoint))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "create bucket: {}", r.status());
    }

    pub fn bucket(&self, name: &str) -> BucketConfig {
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

impl S3Server {
    /// The multipart uploads begun and neither completed nor aborted in a bucket, as S3's
    /// ListMultipartUploads names them (their keys).
    pub async fn open_uploads(&self, name: &str) -> Vec<String> {
        let body = reqwest::get(format!("{}/{name}?uploads", self.endpoint))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        body.split("<Upload>")
            .skip(1)
            .filter_map(|u| u.split("<Key>").nth(1)?.split("</Key>").next())
            .map(str::to_string)
            .collect()
    }

    /// The credentials and endpoint as the usual AWS_* environment variables.
    pub fn aws_env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT", self.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

/// An object's eTag as the store reports it.
async fn etag(buckets: &Buckets, bucket: &str, key: &str) -> String {
    use object_store::ObjectStoreExt;
    let store = buckets.store(bucket).unwrap();
    let meta = store
        .head(&object_store::path::Path::from(key))
        .await
        .unwrap();
    meta.e_tag.unwrap_or_default()
}

/// The parts a file of `bytes` is uploaded in.
fn parts(bytes: u64) -> u64 {
    bytes.div_ceil(ffarm::buckets::PART_SIZE as u64)
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
    // A completed multipart upload's eTag ends in "-N", N its parts.
    assert!(parts(big) >= 3);
    let tag = etag(&buckets, "cloud", "uploads/long.mp4").await;
    assert!(
        tag.trim_matches('"').ends_with(&format!("-{}", parts(big))),
        "eTag {tag} of a {big}-byte upload in {} parts",
        parts(big)
    );
    let small = etag(&buckets, "cloud", "uploads/clip one.mp4").await;
    assert!(!small.contains('-'), "a small file is one put: {small}");
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
    let tag = etag(&buckets, "cloud", "copies/long.mkv").await;
    assert!(
        tag.trim_matches('"')
            .ends_with(&format!("-{}", parts(copy.outputs[0].bytes))),
        "the task's large output went in parts: {tag}"
    );
    assert!(s3.open_uploads("cloud").await.is_empty());
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_reaches_s3_with_credentials_from_the_environment() {
    let s3 = S3Server::start();
    s3.create_bucket("cloud").await;
    let mut farm = Farm::new(Backend::Sqlite).await;
    let mut configured = BTreeMap::new();
    configured.insert("cloud".to_string(), s3.bucket("cloud"));
    let buckets = Buckets::new(farm.data.path(), configured).unwrap();
    buckets
        .upload(
            "cloud",
            "in/a.mp4",
            &valid("h264_aac.mp4"),
            &StopToken::new(),
            &mut |_, _| {},
        )
        .await
        .unwrap();
    let cloud_job = |prefix: &'static str| {
        move |s: &mut ffarm::job::JobSpec| {
            s.input.bucket = "cloud".into();
            s.output.bucket = "cloud".into();
            s.output.prefix = prefix.into();
        }
    };
    // Only the URL on the command line; credentials and endpoint from AWS_*.
    let env = s3.aws_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    farm.start_process(&["--workers", "1", "--bucket", "cloud=s3://cloud"], &env);
    let job = farm.submit("in/a.mp4", "mp4", cloud_job("env/")).await;
    let done = farm.wait_terminal(&job.id, Duration::from_secs(90)).await;
    assert_eq!(done.status, Status::Succeeded, "{:?}", done.error);
    assert!(buckets.size("cloud", "env/a.mp4").await.unwrap() > 1000);
    let mut first = farm.processes.pop().unwrap();
    let _ = first.kill();
    let _ = first.wait();

    // Configuration wins over the environment: a wrong AWS_ENDPOINT, the right one configured.
    let mut env = s3.aws_env();
    for (k, v) in env.iter_mut() {
        if k == "AWS_ENDPOINT" {
            *v = "http://127.0.0.1:9".into();
        }
    }
    env.push(("FFARM_BUCKETS__CLOUD__URL".into(), "s3://cloud".into()));
    env.push((
        "FFARM_BUCKETS__CLOUD__OPTIONS__AWS_ENDPOINT".into(),
        s3.endpoint.clone(),
    ));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    farm.start_process(&["--workers", "1"], &env);
    let job = farm
        .submit("in/a.mp4", "mp4", cloud_job("configured/"))
        .await;
    let done = farm.wait_terminal(&job.id, Duration::from_secs(90)).await;
    assert_eq!(done.status, Status::Succeeded, "{:?}", done.error);
    assert!(buckets.size("cloud", "configured/a.mp4").await.unwrap() > 1000);
    farm.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_multipart_upload_that_fails_is_aborted() {
    let s3 = S3Server::start();
    s3.create_bucket("cloud").await;
    let dir = crate::helpers::tempdir();
    let mut configured = BTreeMap::new();
    configured.insert("cloud".to_string(), s3.bucket("cloud"));
    let buckets = Buckets::new(dir.path(), configured).unwrap();
    let src = dir.path().join("big.mp4");
    std::fs::copy(long_clip(), &src).unwrap();
    let size = std::fs::metadata(&src).unwrap().len();
    assert!(size > ffarm::buckets::MULTIPART_THRESHOLD);
    // The file shrinks once the first part has been read: a read that cannot be trusted.
    let shrink = src.clone();
    let mut shrunk = false;
    let err = buckets
        .upload(
            "cloud",
            "out/big.mp4",
            &src,
            &StopToken::new(),
            &mut |done, _| {
                if !shrunk && done >= ffarm::buckets::PART_SIZE as u64 {
                    shrunk = true;
                    let f = std::fs::OpenOptions::new()
                        .write(true)
                        .open(&shrink)
                        .unwrap();
                    f.set_len(ffarm::buckets::PART_SIZE as u64 + (1 << 20))
                        .unwrap();
                }
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "io-error", "{err}");
    assert!(err.to_string().contains("changed while"), "{err}");
    assert_eq!(
        buckets
            .size("cloud", "out/big.mp4")
            .await
            .unwrap_err()
            .code(),
        "object-not-found"
    );
    assert_eq!(
        s3.open_uploads("cloud").await,
        Vec::<String>::new(),
        "the parts sent were aborted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stop_while_uploading_leaves_nothing_in_s3() {
    let s3 = S3Server::start();
    s3.create_bucket("cloud").await;
    let mut farm = Farm::new(Backend::Sqlite).await;
    let mut configured = BTreeMap::new();
    configured.insert("cloud".to_string(), s3.bucket("cloud"));
    let buckets = Buckets::new(farm.data.path(), configured).unwrap();
    buckets
        .upload(
            "cloud",
            "in/clip.mp4",
            &valid("hls_source_1080p.mp4"),
            &StopToken::new(),
            &mut |_, _| {},
        )
        .await
        .unwrap();
    let mut env = s3.aws_env();
    env.push(("FFARM_BUCKETS__CLOUD__URL".into(), "s3://cloud".into()));
    crate::worker_uploads::a_stop_while_uploading_leaves_nothing(
        &mut farm, &buckets, "cloud", &env,
    )
    .await;
    assert!(s3.open_uploads("cloud").await.is_empty());
    farm.cleanup().await;
}

/// A split HLS job's segments go from the scratch to their final keys by copy: on the server
/// within a bucket, through this host across buckets; a missing source is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn objects_are_copied_within_and_across_buckets() {
    let s3 = S3Server::start();
    s3.create_bucket("cloud").await;
    s3.create_bucket("other").await;
    let dir = crate::helpers::tempdir();
    let mut configured = BTreeMap::new();
    configured.insert("cloud".to_string(), s3.bucket("cloud"));
    configured.insert("other".to_string(), s3.bucket("other"));
    let buckets = Buckets::new(dir.path(), configured).unwrap();
    let src = dir.path().join("seg.ts");
    std::fs::write(&src, b"a media segment").unwrap();
    let stop = StopToken::new();
    let mut quiet = |_, _| {};
    buckets
        .upload("cloud", ".ffarm-scratch/j/seg.ts", &src, &stop, &mut quiet)
        .await
        .unwrap();
    let from = ("cloud", ".ffarm-scratch/j/seg.ts");
    buckets
        .copy(from, ("cloud", "out/a_00000.ts"))
        .await
        .unwrap();
    buckets
        .copy(from, ("other", "out/b_00000.ts"))
        .await
        .unwrap();
    for (bucket, key) in [("cloud", "out/a_00000.ts"), ("other", "out/b_00000.ts")] {
        let got = dir.path().join("got");
        buckets
            .download(bucket, key, &got, &stop, &mut quiet)
            .await
            .unwrap();
        assert_eq!(
            std::fs::read(&got).unwrap(),
            b"a media segment",
            "{bucket}/{key}"
        );
    }
    let err = buckets
        .copy(("cloud", "nothing/here.ts"), ("cloud", "out/c.ts"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "object-not-found", "{err}");
    assert!(err.to_string().contains("nothing/here.ts"), "{err}");
}
