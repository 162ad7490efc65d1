//! `ddpm eval --resume FILE`: each finished batch of samples is appended to FILE, so an
//! evaluation that outlasts a session (DDPM's 1000 steps take hours on a CPU) goes on where it
//! stopped instead of starting over. The first line holds the [`Settings`]; a FILE named `*.gz` is
//! written as one gzip member per line, so that any gzip reader reads it whole, a batch is still
//! one append, and committed journals stay small (they travel in the size-limited tree a lent GPU
//! receives).

use super::settings::Settings;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// What the Fréchet distance and the class accuracy need from one batch of samples.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct BatchResult {
    pub batch: usize,
    pub features: Vec<f32>,
    pub predicted: Vec<usize>,
    pub asked: Vec<Option<usize>>,
}

/// The first line: written with [`Settings`], read as any JSON value because journals written
/// before the settings had fields hold their text form.
#[derive(Serialize, Deserialize)]
struct Header<S> {
    settings: S,
}

/// The batches finished so far, and where new ones go (nowhere without `--resume`).
pub struct Journal {
    file: Option<(PathBuf, File, Encoding)>,
    pub done: BTreeMap<usize, BatchResult>,
}

impl Journal {
    pub fn none() -> Self {
        Self { file: None, done: BTreeMap::new() }
    }

    /// Opens or starts `path` for an evaluation described by `settings`. A file written with other
    /// settings is refused, never overwritten; a last line cut short by a kill is dropped.
    pub fn open(path: &Path, settings: &Settings) -> Result<Self, String> {
        let at = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(at(&e)),
        };
        let (text, complete) = whole_lines(path, &bytes)?;
        let mut done = BTreeMap::new();
        if let Some((header, batches)) = parse(path, &text)? {
            if let Some(differ) = header.differences(settings, &[]) {
                let message = format!("holds another evaluation; the file's settings and this run's differ in {differ}. Remove the file or name another");
                return Err(at(&message));
            }
            done.extend(batches.into_iter().map(|r| (r.batch, r)));
        }
        // Lines go on in the file's own encoding; a new file's is picked by its name.
        let encoding = if complete > 0 { Encoding::of(&bytes) } else { Encoding::for_name(path) };
        let mut file = OpenOptions::new().create(true).write(true).truncate(false).open(path).map_err(|e| at(&e))?;
        file.set_len(complete as u64).and_then(|_| file.seek(SeekFrom::End(0))).map_err(|e| at(&e))?;
        if complete == 0 {
            let header = serde_json::to_string(&Header { settings }).unwrap();
            encoding.append(&mut file, &header).map_err(|e| at(&e))?;
        }
        Ok(Self { file: Some((path.to_path_buf(), file, encoding)), done })
    }

    /// A journal's settings and finished batches in batch order, for reading only (`ddpm compare`).
    pub fn read(path: &Path) -> Result<(Settings, Vec<BatchResult>), String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let (text, _) = whole_lines(path, &bytes)?;
        let (settings, mut batches) = parse(path, &text)?.ok_or_else(|| format!("{}: empty, not an evaluation journal", path.display()))?;
        batches.sort_by_key(|r| r.batch);
        Ok((settings, batches))
    }

    /// Keeps a finished batch; on disk (flushed) before the next one starts.
    pub fn record(&mut self, result: BatchResult) -> Result<(), String> {
        if let Some((path, file, encoding)) = &mut self.file {
            let line = serde_json::to_string(&result).unwrap();
            encoding.append(file, &line).and_then(|_| file.sync_data()).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        self.done.insert(result.batch, result);
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Encoding {
    Plain,
    /// One gzip member per line.
    Gzip,
}

impl Encoding {
    fn of(bytes: &[u8]) -> Self {
        if ddpm_web::data::is_gzip(bytes) { Self::Gzip } else { Self::Plain }
    }

    fn for_name(path: &Path) -> Self {
        if path.extension().is_some_and(|e| e == "gz") { Self::Gzip } else { Self::Plain }
    }

    fn append(self, file: &mut File, line: &str) -> std::io::Result<()> {
        match self {
            Self::Plain => writeln!(file, "{line}"),
            Self::Gzip => file.write_all(&gzip_member(line)?),
        }
    }
}

fn gzip_member(line: &str) -> std::io::Result<Vec<u8>> {
    let mut member = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    writeln!(member, "{line}")?;
    member.finish()
}

/// The text of the lines of `bytes` that were written whole, and how many bytes of the file hold
/// them: a line (or gzip member) cut short by a kill is dropped.
fn whole_lines(path: &Path, bytes: &[u8]) -> Result<(String, usize), String> {
    let at = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    if Encoding::of(bytes) == Encoding::Plain {
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let text = std::str::from_utf8(&bytes[..complete]).map_err(|e| at(&e))?;
        return Ok((text.to_owned(), complete));
    }
    let (mut text, mut complete) = (String::new(), 0);
    while complete < bytes.len() {
        let mut member = flate2::bufread::GzDecoder::new(&bytes[complete..]);
        let mut line = String::new();
        match member.read_to_string(&mut line) {
            // Cut short: the last batch was being written.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            // Anything else is damage, which resuming would cut away with everything after it.
            Err(e) => return Err(at(&format!("damaged at byte {complete} ({e}); not resumed"))),
            Ok(_) if !line.ends_with('\n') => return Err(at(&format!("damaged at byte {complete} (a line without its end)"))),
            Ok(_) => {}
        }
        text += &line;
        complete = bytes.len() - member.into_inner().len();
    }
    Ok((text, complete))
}

/// The header's settings and the batches of `text` (whole lines).
fn parse(path: &Path, text: &str) -> Result<Option<(Settings, Vec<BatchResult>)>, String> {
    let at = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let mut lines = text.lines();
    let Some(first) = lines.next() else { return Ok(None) };
    let header: Header<serde_json::Value> = serde_json::from_str(first).map_err(|_| at(&"not an evaluation journal (see --resume)"))?;
    let settings = Settings::from_header(header.settings).map_err(|e| at(&e))?;
    let batches = lines
        .enumerate()
        .map(|(i, line)| serde_json::from_str(line).map_err(|e| at(&format!("line {}: {e}", i + 2))))
        .collect::<Result<Vec<BatchResult>, String>>()?;
    Ok(Some((settings, batches)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SamplerArg;

    /// Settings as a journal of `sampler` records them.
    fn settings(sampler: SamplerArg) -> Settings {
        let (weights, classifier) = ("2534959 bytes crc32 b0d845b5".into(), "1687592 bytes crc32 9cc44be1".into());
        Settings { weights, classifier, sampler, steps: 1000, clip_x0: false, guidance: 1.5, guidance_interval: Some((0, 600)), count: 3, batch: 1, seed: 0 }
    }

    fn batch(b: usize) -> BatchResult {
        BatchResult { batch: b, features: vec![b as f32 + 0.5, -1.25], predicted: vec![b % 10], asked: vec![Some(b % 10)] }
    }

    /// The same story, plain and gzipped: what a kill leaves half-written (`torn`) is dropped.
    fn resumes_the_batches_written_and_drops_a_torn_last_line(name: &str, torn: &[u8]) -> Vec<u8> {
        let path = std::env::temp_dir().join(format!("ddpm-journal-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let a = settings(SamplerArg::Ddpm);
        let mut j = Journal::open(&path, &a).unwrap();
        assert!(j.done.is_empty());
        j.record(batch(0)).unwrap();
        j.record(batch(1)).unwrap();
        drop(j);
        // A kill in the middle of writing batch 2.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(torn).unwrap();
        drop(f);

        let mut j = Journal::open(&path, &a).unwrap();
        assert_eq!(j.done.values().cloned().collect::<Vec<_>>(), vec![batch(0), batch(1)]);
        j.record(batch(2)).unwrap();
        drop(j);
        let j = Journal::open(&path, &a).unwrap();
        assert_eq!(j.done.len(), 3);
        assert_eq!(j.done[&2], batch(2));
        // Read back for comparison, in batch order, whatever order they were written in.
        assert_eq!(Journal::read(&path).unwrap(), (a.clone(), vec![batch(0), batch(1), batch(2)]));

        // Other settings: refused, and the file is left as it was.
        let before = std::fs::read(&path).unwrap();
        let err = Journal::open(&path, &settings(SamplerArg::DdpmTilde)).err().unwrap();
        assert!(err.contains("holds another evaluation") && err.contains("differ in sampler (DDPM and DDPM (σ² = β̃))"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
        std::fs::write(&path, "garbage\n").unwrap();
        assert!(Journal::open(&path, &a).err().unwrap().contains("not an evaluation journal"));
        std::fs::remove_file(&path).unwrap();
        before
    }

    #[test]
    fn a_plain_journal_resumes() {
        let text = resumes_the_batches_written_and_drops_a_torn_last_line("plain.jsonl", b"{\"batch\":2,\"features\":[0.");
        assert_eq!(String::from_utf8(text).unwrap().lines().count(), 4);
    }

    #[test]
    fn a_gzipped_journal_resumes_and_any_gzip_reader_reads_it_as_the_plain_one() {
        let member = |line: &str| gzip_member(line).unwrap();
        let batch2 = member(r#"{"batch":2,"features":[0.5,-1.25],"predicted":[2],"asked":[2]}"#);
        let gz = resumes_the_batches_written_and_drops_a_torn_last_line("gz.jsonl.gz", &batch2[..batch2.len() - 5]);
        let plain = resumes_the_batches_written_and_drops_a_torn_last_line("plain2.jsonl", b"");
        assert_eq!(&gz[..2], &[0x1f, 0x8b]);
        let mut text = Vec::new();
        flate2::read::MultiGzDecoder::new(&gz[..]).read_to_end(&mut text).unwrap();
        assert_eq!(text, plain);

        // A damaged byte in the first batch is refused, not cut away with the batches after it.
        let path = std::env::temp_dir().join(format!("ddpm-journal-{}-damaged.jsonl.gz", std::process::id()));
        let a = settings(SamplerArg::Ddpm);
        let header = member(&serde_json::to_string(&Header { settings: &a }).unwrap()).len();
        let mut damaged = gz.clone();
        damaged[header + 20] ^= 0xff;
        std::fs::write(&path, &damaged).unwrap();
        let err = Journal::open(&path, &a).err().unwrap();
        assert!(err.contains("damaged at byte"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), damaged);
        std::fs::remove_file(&path).unwrap();
    }

    /// Journals written before the settings had fields (the committed ones) hold their text form:
    /// read as the same settings, they are resumed and compared as a new journal is.
    #[test]
    fn an_old_journal_is_read_resumed_and_refused_by_its_settings() {
        let path = std::env::temp_dir().join(format!("ddpm-journal-{}-old.jsonl", std::process::id()));
        let a = settings(SamplerArg::Ddpm);
        let old = format!("{}\n{}\n", serde_json::json!({ "settings": a.to_string() }), serde_json::to_string(&batch(0)).unwrap());
        assert!(old.starts_with(r#"{"settings":"weights 2534959 bytes crc32 b0d845b5, classifier 1687592 bytes crc32 9cc44be1, DDPM 1000 steps, guidance at t 0-600, guidance 1.5, count 3, batch 1, seed 0"}"#), "{old}");
        std::fs::write(&path, &old).unwrap();
        assert_eq!(Journal::read(&path).unwrap(), (a.clone(), vec![batch(0)]));
        let err = Journal::open(&path, &Settings { seed: 1, ..a.clone() }).err().unwrap();
        assert!(err.contains("holds another evaluation") && err.contains("differ in seed (0 and 1)"), "{err}");
        let mut j = Journal::open(&path, &a).unwrap();
        j.record(batch(1)).unwrap();
        drop(j);
        assert_eq!(Journal::read(&path).unwrap(), (a, vec![batch(0), batch(1)]));
        assert!(std::fs::read_to_string(&path).unwrap().starts_with(&old), "the old header stays as it was");
        std::fs::remove_file(&path).unwrap();
    }
}
