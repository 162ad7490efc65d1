//! Which of Burn's kernel fusers run on a CubeCL device (wgpu, WebGPU). Fusion is a build
//! feature; this turns single fusers off at run time, so a wrong fused kernel can be bisected
//! without a rebuild (`DDPM_FUSERS_OFF=Reduce,Matmul ddpm bench --device wgpu`).

/// The fusers Burn registers, by the names `burn_cubecl::fusion::remove` takes.
pub const FUSERS: [&str; 5] = ["ElementWise", "Matmul", "Reduce", "ReduceBroadcasted", "NHWCRelayout"];

/// Turns off the named fusers. Must run before the first tensor operation on a fused device.
pub fn turn_off(names: &[&str]) -> Result<(), String> {
    for name in names {
        if !FUSERS.contains(name) {
            return Err(format!("unknown fuser {name:?}; the fusers are {}", FUSERS.join(", ")));
        }
        #[cfg(feature = "fusion")]
        burn_cubecl::fusion::remove(name).map_err(|e| format!("turning fuser {name} off: {e}"))?;
    }
    Ok(())
}

/// [`turn_off`] for the comma-separated names in `DDPM_FUSERS_OFF`, if it is set; once per
/// process, as the registry closes at the first fused operation.
pub fn turn_off_from_env() -> Result<(), String> {
    static DONE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    DONE.get_or_init(|| match std::env::var("DDPM_FUSERS_OFF") {
        Ok(list) => turn_off(&list.split(',').map(str::trim).filter(|s| !s.is_empty()).collect::<Vec<_>>()),
        Err(_) => Ok(()),
    })
    .clone()
}
