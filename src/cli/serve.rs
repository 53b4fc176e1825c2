//! `ffarm serve`: loads the configuration, runs the farm, and prints where it listens and
//! where to drop files.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use super::exit;
use super::farm::FarmArgs;
use crate::config::Config;
use crate::worker::Shutdown;

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub farm: FarmArgs,
    /// Where the API and the page listen (port 0: any free port) [default: 127.0.0.1:8080].
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,
}

/// `ffarm serve`: runs until SIGTERM/SIGINT, then drains (a second signal stops at once).
pub fn serve(args: &ServeArgs, presets_dir: Option<&PathBuf>) -> anyhow::Result<u8> {
    let mut config = args.farm.load(presets_dir)?;
    if let Some(l) = &args.listen {
        config.listen = l.clone();
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let shutdown = Shutdown::on_signals()?;
        let shown = config.clone();
        crate::serve::run(config, shutdown, move |addr| banner(&shown, addr)).await
    })?;
    Ok(exit::OK)
}

fn banner(config: &Config, addr: SocketAddr) {
    let url = format!("http://{addr}");
    println!("ffarm {} serving on {url}", env!("CARGO_PKG_VERSION"));
    println!("  API       {url}/v1  (OpenAPI: {url}/v1/openapi.json)");
    println!("  store     {}", redacted(&config.store_url()));
    match config.slots() {
        0 => println!("  workers   none in this process (API only)"),
        n => println!("  workers   {n} slot(s)"),
    }
    if config.token.is_some() {
        println!("  auth      bearer token required");
    }
    if config.watch.enabled {
        let buckets = crate::buckets::Buckets::new(&config.data_dir, config.buckets.clone()).ok();
        for rule in &config.triggers {
            if let Some(dir) = buckets.as_ref().and_then(|b| b.local_dir(&rule.bucket)) {
                println!(
                    "  drop      {}  →  {}  ({})",
                    dir.join(&rule.prefix).display(),
                    dir.join(rule.output_root()).display(),
                    rule.presets.join(", ")
                );
            }
        }
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
}

fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("********"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}
