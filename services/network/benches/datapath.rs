//! What the Linux datapath costs on this host (root): a network made from
//! nothing, the idempotent re-run the service does on start, `set_hosts`
//! with 1,000 ports (file + SIGHUP) and a delete, each beside the anchor of
//! the same run: one `ip link show lo` (the subprocess every step pays).
//!
//! `cargo bench -p nova-network --bench datapath [-- ROUNDS]`

use std::time::{Duration, Instant};

use nova_network::{
    Datapath, HostEntry, LinuxDatapath, LinuxDatapathConfig, NetworkSpec, bridge_name,
};
use uuid::Uuid;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:8.2} ms", d.as_secs_f64() * 1e3)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5);
    let state = std::env::temp_dir().join(format!("nova-network-bench-{}", std::process::id()));
    let dp = LinuxDatapath::new(LinuxDatapathConfig {
        state_dir: state.clone(),
        metadata_upstream: Some("http://127.0.0.1:8775".into()),
        ..LinuxDatapathConfig::default()
    });
    let (mut anchor, mut cold, mut warm, mut hosts, mut delete) =
        (vec![], vec![], vec![], vec![], vec![]);
    for r in 0..rounds {
        let t = Instant::now();
        let ok = tokio::process::Command::new("ip")
            .args(["link", "show", "lo"])
            .output()
            .await?
            .status
            .success();
        anyhow::ensure!(ok, "ip link show lo failed");
        anchor.push(t.elapsed());
        let id = Uuid::new_v4();
        let net = NetworkSpec {
            network_id: id,
            bridge: bridge_name(id),
            cidr: format!("10.{}.0.0/16", 150 + r % 50),
            gateway_ip: Some(format!("10.{}.0.1", 150 + r % 50).parse()?),
            dhcp: true,
            mtu: 1500,
        };
        let t = Instant::now();
        let made = dp.ensure_network(&net).await;
        cold.push(t.elapsed());
        if let Err(e) = made {
            let _ = dp.delete_network(id).await;
            return Err(e);
        }
        let t = Instant::now();
        dp.ensure_network(&net).await?;
        warm.push(t.elapsed());
        let entries: Vec<HostEntry> = (0..1000u32)
            .map(|i| HostEntry {
                port_id: Uuid::new_v4(),
                mac: format!("fa:16:3e:00:{:02x}:{:02x}", i >> 8, i & 0xff),
                ip: format!("10.{}.{}.{}", 150 + r % 50, 1 + i / 250, 2 + i % 250)
                    .parse()
                    .unwrap_or_else(|_| std::net::IpAddr::from([10, 0, 0, 2])),
                hostname: format!("vm-{i}"),
            })
            .collect();
        let t = Instant::now();
        dp.set_hosts(id, &entries).await?;
        hosts.push(t.elapsed());
        let t = Instant::now();
        dp.delete_network(id).await?;
        delete.push(t.elapsed());
    }
    let _ = std::fs::remove_dir_all(&state);
    println!("datapath on this host, median of {rounds} rounds");
    println!(
        "  anchor: one `ip link show lo`        {}",
        ms(median(anchor))
    );
    println!(
        "  ensure_network, from nothing          {}",
        ms(median(cold))
    );
    println!(
        "  ensure_network, again (converged)     {}",
        ms(median(warm))
    );
    println!(
        "  set_hosts, 1,000 ports (+ SIGHUP)     {}",
        ms(median(hosts))
    );
    println!(
        "  delete_network                        {}",
        ms(median(delete))
    );
    Ok(())
}
