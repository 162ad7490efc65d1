//! Burn, CubeCL and wgpu report some GPU failures only through the `log` crate: on wasm a shader
//! that fails WebGPU validation is logged from a spawned task while its launch is skipped, which
//! otherwise shows up only as wrong numbers. This logger sends warnings to the console and errors
//! to the console and to the page (`ddpmOnGpuError`), which says what happened.

use log::{Level, LevelFilter, Log, Metadata, Record};

struct Console;

impl Log for Console {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= Level::Warn
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let message = format!("{} ({})", record.args(), record.target());
        if record.level() == Level::Error {
            web_sys::console::error_1(&message.clone().into());
            super::call_global("ddpmOnGpuError", &message);
        } else {
            web_sys::console::warn_1(&message.into());
        }
    }

    fn flush(&self) {}
}

/// Installs the logger once; later calls (a restarted engine) keep the first.
pub fn install() {
    if log::set_logger(&Console).is_ok() {
        log::set_max_level(LevelFilter::Warn);
    }
}
