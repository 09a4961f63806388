//! Reads one nova object primitive (JSON) on stdin, decodes it into our
//! typed object and prints the primitive our encoder produces.
//!
//! ```text
//! cargo run -q --example object_roundtrip < Flavor.json
//! cargo run -q --example object_roundtrip -- --backport 1.1 [--manifest '{"Flavor":"1.1"}'] < Flavor.json
//! cargo run -q --example object_roundtrip -- --msgpack < RequestSpec.json
//! ```
//! Input may be the bare primitive or `{"primitive": ...}` (the fixture
//! files). Exits 1 with a message for unknown objects, unsupported
//! versions or malformed input.

use std::io::Read;
use std::process::ExitCode;

use clap::Parser;
use nova::objects::{Manifest, ObjVersion, registry};

#[derive(Parser)]
struct Args {
    /// Print the primitive backported to this version (X.Y).
    #[arg(long)]
    backport: Option<String>,
    /// Version manifest for the backport (JSON object: name -> "X.Y").
    #[arg(long)]
    manifest: Option<String>,
    /// Round-trip through MessagePack before printing.
    #[arg(long)]
    msgpack: bool,
}

fn run(args: Args) -> Result<serde_json::Value, String> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| format!("reading stdin: {e}"))?;
    let mut v: serde_json::Value =
        serde_json::from_str(&input).map_err(|e| format!("stdin is not JSON: {e}"))?;
    if let Some(p) = v.get_mut("primitive") {
        v = p.take();
    }
    let reg = registry();
    let mut obj = reg.decode(v).map_err(|e| e.to_string())?;
    if args.msgpack {
        let bytes = obj.to_msgpack().map_err(|e| e.to_string())?;
        obj = reg.decode_msgpack(&bytes).map_err(|e| e.to_string())?;
    }
    let Some(target) = args.backport else {
        return Ok(obj.to_value());
    };
    let target: ObjVersion = target
        .parse()
        .map_err(|e: nova::objects::Error| e.to_string())?;
    let manifest: Option<Manifest> = match args.manifest {
        None => None,
        Some(m) => {
            let raw: std::collections::BTreeMap<String, String> =
                serde_json::from_str(&m).map_err(|e| format!("--manifest: {e}"))?;
            let mut out = Manifest::new();
            for (k, v) in raw {
                out.insert(
                    k,
                    v.parse().map_err(|e: nova::objects::Error| e.to_string())?,
                );
            }
            Some(out)
        }
    };
    obj.to_value_at(target, manifest.as_ref())
        .map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("object_roundtrip: {e}");
            ExitCode::FAILURE
        }
    }
}
