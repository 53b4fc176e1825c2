//! `ffarm serve`: loads the configuration, runs the farm, and prints where it listens and
//! where to drop files.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use super::exit;
use super::options::FarmArgs;
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
        crate::serve::run(config, shutdown, move |addr| banner(&shown, addr)).await?;
        anyhow::Ok(())
    })?;
    Ok(exit::OK)
}

/// Where the farm is and where to drop files. Written to stdout, ignoring a closed pipe: a
/// banner nobody reads must not stop the server.
fn banner(config: &Config, addr: SocketAddr) {
    use std::io::Write;
    let url = format!("http://{addr}");
    let mut text = format!("ffarm {} serving on {url}\n", env!("CARGO_PKG_VERSION"));
    let mut line = |s: String| {
        text.push_str(&s);
        text.push('\n');
    };
    line(format!(
        "  API       {url}/v1  (OpenAPI: {url}/v1/openapi.json)"
    ));
    line(format!("  store     {}", redacted(&config.store_url())));
    line(match config.slots() {
        0 => "  workers   none in this process (API only)".into(),
        n => format!("  workers   {n} slot(s)"),
    });
    if config.token.is_some() {
        line("  auth      bearer token required".into());
    }
    if config.watch.enabled {
        let buckets = crate::buckets::Buckets::new(&config.data_dir, config.buckets.clone()).ok();
        for rule in &config.triggers {
            if let Some(dir) = buckets.as_ref().and_then(|b| b.local_dir(&rule.bucket)) {
                line(format!(
                    "  drop      {}  →  {}  ({})",
                    dir.join(&rule.prefix).display(),
                    dir.join(rule.output_root()).display(),
                    rule.presets.join(", ")
                ));
            }
        }
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
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
