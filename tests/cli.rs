//! The CLI on bad input: a one-line error naming the problem and a non-zero exit, never a panic.

use std::process::Command;

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ddpm")).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ddpm-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[track_caller]
fn fails_cleanly(args: &[&str], mentions: &str) {
    let (code, stderr) = run(args);
    assert_ne!(code, 0, "{args:?} should fail");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    let first = stderr.lines().next().unwrap_or("");
    assert!(first.starts_with("error:") && first.contains(mentions), "{args:?}: {stderr}");
}

#[test]
fn bad_input_gives_a_one_line_error_and_a_non_zero_exit() {
    fails_cleanly(&["train", "--data", "/nonexistent/fashion", "--steps", "1"], "/nonexistent/fashion");
    let bad = temp("idx");
    std::fs::write(bad.join("train-images-idx3-ubyte"), b"\x00\x00\x08\x03\x00\x00\x00\x05").unwrap();
    std::fs::write(bad.join("train-labels-idx1-ubyte"), b"\x00\x00\x08\x01\x00\x00\x00\x05\x01").unwrap();
    fails_cleanly(&["train", "--data", bad.to_str().unwrap(), "--steps", "1"], "images");
    let junk = bad.join("junk.ddpm");
    std::fs::write(&junk, b"this is not a model").unwrap();
    fails_cleanly(&["sample", "--weights", junk.to_str().unwrap(), "--out", bad.join("x.png").to_str().unwrap()], "not a ddpm-web weights file");
    fails_cleanly(&["sample", "--steps", "abc"], "invalid value 'abc'");
    fails_cleanly(&["sample", "--weights", "www/assets/model.ddpm", "--sampler", "ddim", "--steps", "7"], "divide");
    fails_cleanly(&["sample", "--weights", "www/assets/model.ddpm", "--class", "12"], "--class");
    fails_cleanly(&["frobnicate"], "unrecognized subcommand");
}
