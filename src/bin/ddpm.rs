//! The `ddpm` command line: train, sample and evaluate (subcommands arrive with the CLI issue).

use clap::{Parser, Subcommand};
use ddpm_web::unet::UNetConfig;

#[derive(Parser)]
#[command(name = "ddpm", version, about = "Denoising diffusion on Fashion-MNIST, in Rust + Burn")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the default U-Net's configuration and parameter count.
    Info,
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::Info => {
            let config = UNetConfig::new();
            let model = config.init(&burn::prelude::Device::flex());
            use burn::module::Module;
            println!("{}", serde_json::to_string_pretty(&config).unwrap());
            println!("parameters: {}", model.num_params());
        }
    }
}
