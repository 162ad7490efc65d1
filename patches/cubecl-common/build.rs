use cfg_aliases::cfg_aliases;

fn main() {
    // Patched: without it Cargo reruns this script whenever any file of the folder changes.
    println!("cargo:rerun-if-changed=build.rs");
    if let Ok(family) = std::env::var("CARGO_CFG_TARGET_FAMILY")
        && family == "wasm"
    {
        println!("cargo:rustc-cfg=portable_atomic_unsafe_assume_single_core");
    }
    // Setup cfg aliases
    cfg_aliases! {
        multi_threading: { all(feature = "std", not(target_family = "wasm")) },
    }
}
