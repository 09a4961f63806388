//! `nova-all`: every nova-rs service in one process, with embedded
//! defaults (memory transport, a SQLite file, fake computes), a
//! `clouds.yaml` for its built-in identity, and the APIs on loopback.

// mimalloc: glibc malloc was ~15 % of the CPU of a boot in nova-all.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;

use clap::Parser;
use nova_service::Conf;

/// nova-all: the whole control plane in one process.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// nova.conf files (optional; embedded defaults otherwise).
    #[arg(long = "config", alias = "config-file")]
    config: Vec<PathBuf>,
    /// How many fake computes to run.
    #[arg(long, default_value_t = 1)]
    fake_computes: usize,
    /// Where the database, images and clouds.yaml live.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Compute API port (identity at /identity).
    #[arg(long)]
    port: Option<u16>,
    /// Image API port.
    #[arg(long)]
    image_port: Option<u16>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let conf = Conf::for_service(&args.config)?;
    let state = args
        .state_dir
        .clone()
        .unwrap_or_else(nova_all::default_state_dir);
    let mut conf = nova_all::embedded_defaults(conf, &state);
    if let Some(p) = args.port {
        conf.set("DEFAULT", "osapi_compute_listen_port", &p.to_string());
    }
    if let Some(p) = args.image_port {
        conf.set("image", "bind_port", &p.to_string());
    }
    let stop = nova_service::shutdown_token();
    let started = std::time::Instant::now();
    let all = nova_all::AllInOne::start(conf, args.fake_computes).await?;
    nova_all::seed(&all).await?;
    let clouds = state.join("clouds.yaml");
    all.write_clouds_yaml(&clouds)?;
    println!(
        "nova-all is up in {:.1} s: compute {}/v2.1, identity {}, image {}, {} fake compute(s)",
        started.elapsed().as_secs_f64(),
        all.api.compute_url,
        all.api.identity_url,
        all.api.image_url,
        all.computes.len()
    );
    println!("clouds.yaml: {}", clouds.display());
    println!(
        "try: OS_CLIENT_CONFIG_FILE={} openstack --os-cloud nova-rs server create --flavor m1.tiny --image fake-image --nic none demo --wait",
        clouds.display()
    );
    stop.cancelled().await;
    all.shutdown().await;
    Ok(())
}
