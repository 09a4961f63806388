//! The config drive: nova's ISO 9660 volume labelled `config-2` holding
//! the metadata trees (`openstack/…`, `ec2/…`), made with `genisoimage`
//! (or `xorriso -as mkisofs`) as nova's `configdrive.py` does.

use std::path::{Component, Path, PathBuf};

use crate::driver::InjectedFile;

/// The config drive's file name in the instance directory (nova's).
pub const FILE: &str = "disk.config";

/// The volume label cloud-init looks for.
pub const LABEL: &str = "config-2";

/// Writes `files` under a staging directory and makes `<dir>/disk.config`
/// of them (Rock Ridge and Joliet, as nova's `mkisofs` flags); returns its
/// path. A path that leaves the tree (`..`, absolute) is refused.
pub async fn build(dir: &Path, files: &[InjectedFile]) -> Result<PathBuf, String> {
    let staging = dir.join("config-drive.staging");
    let _ = std::fs::remove_dir_all(&staging);
    for f in files {
        let rel = Path::new(&f.path);
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(format!("config drive: bad path {:?}", f.path));
        }
        let p = staging.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&p, &f.contents).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    std::fs::create_dir_all(&staging).map_err(|e| format!("{}: {e}", staging.display()))?;
    let out = dir.join(FILE);
    let args = |cmd: &mut tokio::process::Command| {
        cmd.args([
            "-o",
            &out.display().to_string(),
            "-ldots",
            "-allow-lowercase",
            "-allow-multidot",
            "-l",
            "-publisher",
            "nova-rs",
            "-quiet",
            "-J",
            "-r",
            "-V",
            LABEL,
        ])
        .arg(&staging);
    };
    let mut tried = Vec::new();
    let mut result = Err("no ISO maker".to_owned());
    for (prog, pre) in [
        ("genisoimage", &[][..]),
        ("xorriso", &["-as", "mkisofs"][..]),
    ] {
        let mut cmd = tokio::process::Command::new(prog);
        cmd.args(pre);
        args(&mut cmd);
        match cmd.output().await {
            Ok(o) if o.status.success() => {
                result = Ok(out.clone());
                break;
            }
            Ok(o) => {
                result = Err(format!(
                    "{prog}: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ));
                break;
            }
            Err(e) => tried.push(format!("{prog}: {e}")),
        }
    }
    let _ = std::fs::remove_dir_all(&staging);
    result.map_err(|e| {
        if tried.len() == 2 {
            format!(
                "config drive: neither genisoimage nor xorriso can be run ({})",
                tried.join("; ")
            )
        } else {
            e
        }
    })
}
