//! What several test binaries share.

use burn::prelude::*;
use std::sync::{Mutex, MutexGuard, OnceLock};

/// The wgpu device, once per process (a second initialisation fails). Tests take the lock:
/// launch counts are process-wide.
pub fn wgpu() -> (Device, MutexGuard<'static, ()>) {
    static DEVICE: OnceLock<Device> = OnceLock::new();
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let device = DEVICE.get_or_init(|| Device::wgpu_options().init().expect("a wgpu adapter (lavapipe on machines without a GPU)")).clone();
    (device, guard)
}
