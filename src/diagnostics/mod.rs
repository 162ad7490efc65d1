//! Native diagnostics for `ddpm bench` and the tests, not used in sampling or training: kernel
//! launches counted (in all and by part of the network), and Burn's fusers switched off one by
//! one.

pub mod fusion;
pub mod launches;
