//! `ddpm eval --resume FILE`: each finished batch of samples is appended to FILE, so an
//! evaluation that outlasts a session (DDPM's 1000 steps take hours on a CPU) goes on where it
//! stopped instead of starting over.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// What the Fréchet distance and the class accuracy need from one batch of samples.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct BatchResult {
    pub batch: usize,
    pub features: Vec<f32>,
    pub predicted: Vec<usize>,
    pub asked: Vec<Option<usize>>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    settings: String,
}

/// The batches finished so far, and where new ones go (nowhere without `--resume`).
pub struct Journal {
    file: Option<(PathBuf, File)>,
    pub done: BTreeMap<usize, BatchResult>,
}

impl Journal {
    pub fn none() -> Self {
        Self { file: None, done: BTreeMap::new() }
    }

    /// Opens or starts `path` for an evaluation described by `settings`. A file written with other
    /// settings is refused, never overwritten; a last line cut short by a kill is dropped.
    pub fn open(path: &Path, settings: &str) -> Result<Self, String> {
        let at = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(at(&e)),
        };
        let (written, complete) = parse(path, &text)?;
        let mut done = BTreeMap::new();
        if let Some((header, batches)) = written {
            if header != settings {
                return Err(at(&format!("holds another evaluation ({header}); this one is {settings}. Remove the file or name another")));
            }
            done.extend(batches.into_iter().map(|r| (r.batch, r)));
        }
        let mut file = OpenOptions::new().create(true).write(true).truncate(false).open(path).map_err(|e| at(&e))?;
        file.set_len(complete as u64).and_then(|_| file.seek(SeekFrom::End(0))).map_err(|e| at(&e))?;
        if complete == 0 {
            writeln!(file, "{}", serde_json::to_string(&Header { settings: settings.into() }).unwrap()).map_err(|e| at(&e))?;
        }
        Ok(Self { file: Some((path.to_path_buf(), file)), done })
    }

    /// A journal's settings and finished batches in batch order, for reading only (`ddpm compare`).
    pub fn read(path: &Path) -> Result<(String, Vec<BatchResult>), String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let (written, _) = parse(path, &text)?;
        let (settings, mut batches) = written.ok_or_else(|| format!("{}: empty, not an evaluation journal", path.display()))?;
        batches.sort_by_key(|r| r.batch);
        Ok((settings, batches))
    }

    /// Keeps a finished batch; on disk (flushed) before the next one starts.
    pub fn record(&mut self, result: BatchResult) -> Result<(), String> {
        if let Some((path, file)) = &mut self.file {
            let line = serde_json::to_string(&result).unwrap();
            writeln!(file, "{line}").and_then(|_| file.sync_data()).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        self.done.insert(result.batch, result);
        Ok(())
    }
}

/// The header's settings and the batches of `text`, and how many of its bytes were written whole
/// (only lines ending in a newline were: a last line cut short by a kill is dropped).
fn parse(path: &Path, text: &str) -> Result<(Option<(String, Vec<BatchResult>)>, usize), String> {
    let at = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let complete = text.rfind('\n').map_or(0, |i| i + 1);
    let mut lines = text[..complete].lines();
    let Some(first) = lines.next() else { return Ok((None, 0)) };
    let header: Header = serde_json::from_str(first).map_err(|_| at(&"not an evaluation journal (see --resume)"))?;
    let batches = lines
        .enumerate()
        .map(|(i, line)| serde_json::from_str(line).map_err(|e| at(&format!("line {}: {e}", i + 2))))
        .collect::<Result<Vec<BatchResult>, String>>()?;
    Ok((Some((header.settings, batches)), complete))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(b: usize) -> BatchResult {
        BatchResult { batch: b, features: vec![b as f32 + 0.5, -1.25], predicted: vec![b % 10], asked: vec![Some(b % 10)] }
    }

    #[test]
    fn resumes_the_batches_written_and_drops_a_torn_last_line() {
        let path = std::env::temp_dir().join(format!("ddpm-journal-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let mut j = Journal::open(&path, "A").unwrap();
        assert!(j.done.is_empty());
        j.record(batch(0)).unwrap();
        j.record(batch(1)).unwrap();
        drop(j);
        // A kill in the middle of writing batch 2.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        write!(f, "{{\"batch\":2,\"features\":[0.").unwrap();
        drop(f);

        let mut j = Journal::open(&path, "A").unwrap();
        assert_eq!(j.done.values().cloned().collect::<Vec<_>>(), vec![batch(0), batch(1)]);
        j.record(batch(2)).unwrap();
        drop(j);
        let j = Journal::open(&path, "A").unwrap();
        assert_eq!(j.done.len(), 3);
        assert_eq!(j.done[&2], batch(2));
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 4);
        // Read back for comparison, in batch order, whatever order they were written in.
        let (settings, batches) = Journal::read(&path).unwrap();
        assert_eq!((settings.as_str(), batches), ("A", vec![batch(0), batch(1), batch(2)]));

        // Other settings: refused, and the file is left as it was.
        let before = std::fs::read(&path).unwrap();
        let err = Journal::open(&path, "B").err().unwrap();
        assert!(err.contains("another evaluation (A)"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
        std::fs::write(&path, "garbage\n").unwrap();
        assert!(Journal::open(&path, "A").err().unwrap().contains("not an evaluation journal"));
        std::fs::remove_file(&path).unwrap();
    }
}
