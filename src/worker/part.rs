//! One part of a split job, in its task process: a video part encodes its range from its
//! source in the scratch, the audio part the whole input's audio, each putting what it made
//! back in the scratch; the assembly gathers the parts' results and the audio, joins them
//! into the job's outputs and publishes them like a whole job's (reserve, upload, playlists
//! last).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::protocol::{PartTask, TaskWork};
use super::taskio::{
    Dirs, Done, Failure, Publication, Source, TaskIo, io_failure, load_preset, output_stem,
    progress_reporter, relative_name,
};
use crate::engine::{Access, Work};
use crate::job::{JobError, Part, PartKind, Scratch, SplitPlan};
use crate::media::{
    self,
    split::{HlsAssembly, Layout},
};
use crate::preset::Preset;

/// What a video or audio part made: its files, relative to its folder in the scratch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartResult {
    pub files: Vec<String>,
}

/// The scratch folder (relative to the job's prefix) of what part `part` made.
pub fn made_folder(part: &Part) -> String {
    match part.kind {
        PartKind::Audio => "audio/".into(),
        _ => format!("parts/{}/", part.seq),
    }
}

/// Runs the part `spec` describes.
pub(super) fn work(
    spec: &super::protocol::TaskSpec,
    stop: &crate::stop::StopToken,
    runtime: &tokio::runtime::Runtime,
    phases: &mut BTreeMap<String, f64>,
) -> Result<Done, Failure> {
    let TaskWork::Part(task) = &spec.work else {
        return Err(internal("not a part's task".into()));
    };
    let PartTask {
        part,
        plan,
        threads,
        others,
    } = task.as_ref();
    let preset = load_preset(spec)?;
    let io = TaskIo::new(spec, stop, runtime)?;
    let layout: Layout = serde_json::from_value(plan.detail.clone())
        .map_err(|e| internal(format!("the job's split plan is unreadable: {e}")))?;
    let dirs = Dirs::create(&spec.workspace)?;
    let step = Step {
        io: &io,
        part,
        plan,
        layout: &layout,
        preset: &preset,
        dirs: &dirs,
    };
    eprintln!(
        "[task] part {} ({}): {:.2} s to {:.2} s of the input",
        part.seq,
        part.kind.as_str(),
        part.start_us as f64 / 1e6,
        part.end_us as f64 / 1e6
    );
    match part.kind {
        PartKind::Video => step.video(*threads, phases),
        PartKind::Audio => step.audio(phases),
        PartKind::Assemble => step.assemble(others, phases),
    }
}

fn internal(message: String) -> Failure {
    Failure::Error(JobError::new("internal", message, false))
}

/// One part's work and what it needs.
struct Step<'a> {
    io: &'a TaskIo<'a>,
    part: &'a Part,
    plan: &'a SplitPlan,
    layout: &'a Layout,
    preset: &'a Preset,
    dirs: &'a Dirs,
}

impl Step<'_> {
    fn scratch(&self) -> &Scratch {
        &self.plan.scratch
    }

    /// Downloads `name` from the scratch into the input folder.
    fn fetch_source(&self, name: &str) -> Result<PathBuf, Failure> {
        let object = self.scratch().key(name);
        let dest = self
            .dirs
            .input
            .join(name.rsplit('/').next().unwrap_or(name));
        self.io.fetch(&object.bucket, &object.key, &dest)?;
        Ok(dest)
    }

    fn video(&self, threads: u32, phases: &mut BTreeMap<String, f64>) -> Result<Done, Failure> {
        let t = Instant::now();
        let src = self.fetch_source(&format!("src/{}.nut", self.part.seq))?;
        phases.insert("downloading".into(), t.elapsed().as_secs_f64());
        let t = Instant::now();
        let out = &self.dirs.output;
        let work = Work::EncodePart {
            source: src.clone(),
            layout: Box::new(self.layout.clone()),
            seq: self.part.seq,
            dir: out.clone(),
            threads,
        };
        let access = Access::read(&src).writing(out);
        let () = self.io.media(work, access, &mut progress_reporter())?;
        phases.insert("transcoding".into(), t.elapsed().as_secs_f64());
        eprintln!(
            "[task] encoded part {} with {threads} thread(s) in {:.2} s",
            self.part.seq,
            t.elapsed().as_secs_f64()
        );
        self.keep_made(phases)
    }

    fn audio(&self, phases: &mut BTreeMap<String, f64>) -> Result<Done, Failure> {
        let t = Instant::now();
        let rest = self.fetch_source("src/rest.nut")?;
        phases.insert("downloading".into(), t.elapsed().as_secs_f64());
        let t = Instant::now();
        let work = Work::EncodeAudio {
            source: rest.clone(),
            layout: Box::new(self.layout.clone()),
            dir: self.dirs.output.clone(),
        };
        let access = Access::read(&rest).writing(&self.dirs.output);
        let () = self.io.media(work, access, &mut progress_reporter())?;
        phases.insert("transcoding".into(), t.elapsed().as_secs_f64());
        self.keep_made(phases)
    }

    /// Uploads what the part made into its scratch folder; its result names the files.
    fn keep_made(&self, phases: &mut BTreeMap<String, f64>) -> Result<Done, Failure> {
        let t = Instant::now();
        let files = files_under(&self.dirs.output)?;
        let folder = made_folder(self.part);
        for rel in &files {
            let object = self.scratch().key(&format!("{folder}{rel}"));
            let path = self.dirs.output.join(rel);
            self.io.put(&object.bucket, &object.key, &path)?;
        }
        phases.insert("uploading".into(), t.elapsed().as_secs_f64());
        let result = PartResult { files };
        serde_json::to_value(result)
            .map(Done::Part)
            .map_err(|e| internal(e.to_string()))
    }

    /// Gathers every part's result and the audio, joins them, and publishes the outputs.
    fn assemble(
        &self,
        others: &[Part],
        phases: &mut BTreeMap<String, f64>,
    ) -> Result<Done, Failure> {
        let t = Instant::now();
        let made = self.io.spec.workspace.join("parts");
        let mut part_dirs = Vec::new();
        let mut audio_dir = None;
        for other in others.iter().filter(|p| p.kind != PartKind::Assemble) {
            let dir = made.join(made_folder(other));
            self.gather(other, &dir)?;
            match other.kind {
                PartKind::Audio => audio_dir = Some(dir),
                _ => part_dirs.push(dir),
            }
        }
        phases.insert("downloading".into(), t.elapsed().as_secs_f64());
        let t = Instant::now();
        let job = &self.io.spec.job;
        let output = self.dirs.output.join(format!(
            "{}.{}",
            output_stem(job),
            self.preset.container.extension()
        ));
        if self.layout.segment_us.is_some() {
            return self.assemble_hls(others, &part_dirs, audio_dir.as_deref(), &output, phases);
        }
        let work = Work::Assemble {
            layout: Box::new(self.layout.clone()),
            parts: part_dirs.clone(),
            audio: audio_dir.clone(),
            output: output.clone(),
        };
        let access = pieces(&part_dirs, audio_dir.as_deref()).writing(&self.dirs.output);
        let report: media::TranscodeReport =
            self.io.media(work, access, &mut progress_reporter())?;
        phases.insert("assembling".into(), t.elapsed().as_secs_f64());
        eprintln!(
            "[task] assembled {} part(s) in {:.2} s ({} frames)",
            part_dirs.len(),
            t.elapsed().as_secs_f64(),
            report.frames
        );
        self.io
            .publish(&report, &self.dirs.output, phases)
            .map(Done::Outputs)
    }

    /// A split HLS job's assembly: the playlists, from the pieces' segment lists; the
    /// segments the parts wrote are copied from the scratch to their final keys (within a
    /// bucket, on the server), then the playlists go up, the master last.
    fn assemble_hls(
        &self,
        others: &[Part],
        part_dirs: &[PathBuf],
        audio_dir: Option<&Path>,
        output: &Path,
        phases: &mut BTreeMap<String, f64>,
    ) -> Result<Done, Failure> {
        let t = Instant::now();
        let work = Work::AssembleHls {
            layout: Box::new(self.layout.clone()),
            parts: part_dirs.to_vec(),
            audio: audio_dir.map(Path::to_path_buf),
            output: output.to_path_buf(),
        };
        let access = pieces(part_dirs, audio_dir).writing(&self.dirs.output);
        let made: HlsAssembly = self.io.media(work, access, &mut |_| {})?;
        phases.insert("assembling".into(), t.elapsed().as_secs_f64());
        let folder = |piece: Option<usize>| {
            let kind = match piece {
                Some(_) => PartKind::Video,
                None => PartKind::Audio,
            };
            others
                .iter()
                .filter(|p| p.kind == kind)
                .nth(piece.unwrap_or(0))
                .map(made_folder)
        };
        let mut outputs = Vec::with_capacity(made.segments.len() + made.playlists.len());
        for s in &made.segments {
            let folder = folder(s.piece)
                .ok_or_else(|| internal(format!("no part wrote segment {}", s.name)))?;
            let object = self.scratch().key(&format!("{folder}{}", s.file));
            outputs.push(Publication {
                name: s.name.clone(),
                from: Source::Object {
                    bucket: object.bucket,
                    key: object.key,
                },
                kind: media::OutputKind::Segment,
                bytes: s.bytes,
            });
        }
        let dir = output.parent().unwrap_or(&self.dirs.output);
        for p in &made.playlists {
            outputs.push(Publication {
                name: p
                    .path
                    .strip_prefix(dir)
                    .unwrap_or(&p.path)
                    .to_string_lossy()
                    .into_owned(),
                from: Source::File(p.path.clone()),
                kind: p.kind,
                bytes: p.bytes,
            });
        }
        eprintln!(
            "[task] wrote the playlists of {} part(s): {} segment(s), {} playlist(s)",
            part_dirs.len(),
            made.segments.len(),
            made.playlists.len()
        );
        let report = media::TranscodeReport {
            outputs: Vec::new(),
            checks: made.check.into_iter().collect(),
            input_damage: 0,
            input: self.layout.input.clone(),
            frames: made.frames,
            out_time_seconds: made.seconds,
            elapsed_seconds: t.elapsed().as_secs_f64(),
        };
        let mut published = self.io.publish_all(outputs, &report, phases)?;
        let prefix = &self.io.spec.job.output.prefix;
        super::checks::attach(&mut published, &report, |path| {
            format!("{prefix}{}", relative_name(dir, path))
        });
        Ok(Done::Outputs(published))
    }

    /// Downloads what `part` made into `dir` (of a split HLS job's parts, not the segments:
    /// they go from the scratch to their final keys).
    fn gather(&self, part: &Part, dir: &Path) -> Result<(), Failure> {
        let result: PartResult = part
            .result
            .clone()
            .ok_or_else(|| internal(format!("part {} has no result", part.seq)))
            .and_then(|r| {
                serde_json::from_value(r)
                    .map_err(|e| internal(format!("part {}'s result: {e}", part.seq)))
            })?;
        let folder = made_folder(part);
        let hls = self.layout.segment_us.is_some();
        for rel in result.files.iter().filter(|f| !(hls && f.ends_with(".ts"))) {
            let object = self.scratch().key(&format!("{folder}{rel}"));
            let dest = dir.join(rel);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io_failure(parent, e))?;
            }
            self.io.get(&object.bucket, &object.key, &dest)?;
        }
        Ok(())
    }
}

/// What an assembly reads: the pieces' folders.
fn pieces(part_dirs: &[PathBuf], audio_dir: Option<&Path>) -> Access {
    let mut read = part_dirs.to_vec();
    read.extend(audio_dir.map(Path::to_path_buf));
    Access {
        read,
        write: Vec::new(),
    }
}

/// The files under `dir`, as paths relative to it, sorted.
fn files_under(dir: &Path) -> Result<Vec<String>, Failure> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| io_failure(&d, e))? {
            let path = entry.map_err(|e| io_failure(&d, e))?.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(rel) = path.strip_prefix(dir) {
                files.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    files.sort();
    Ok(files)
}
