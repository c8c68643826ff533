//! `dpft info`: what this build is and what it sees — version, libtorch, device, threads, data directory.

use anyhow::Result;
use models::DataDir;
use serde_json::json;

use crate::cli::{GlobalArgs, InfoArgs};

pub fn run(global: &GlobalArgs, args: &InfoArgs) -> Result<()> {
    let device = global.device.resolve()?;
    let device_line = dp_core::device::describe(device);
    log::info!("device: {device_line} (requested: {})", global.device);
    let data = DataDir::resolve(global.data_dir.as_deref());
    let status = data.status();
    let cuda_count = tch::Cuda::device_count();
    let libtorch_version = env!("DPFT_LIBTORCH_VERSION");
    let libtorch_lib = env!("DPFT_LIBTORCH_LIB");
    if args.json {
        let datasets: Vec<_> = status
            .iter()
            .map(|s| {
                json!({
                    "name": s.dataset.name,
                    "present": s.present.iter().map(|f| f.path).collect::<Vec<_>>(),
                    "missing": s.missing.iter().map(|f| f.path).collect::<Vec<_>>(),
                    "folder_exists": s.folder_exists,
                })
            })
            .collect();
        let out = json!({
            "version": env!("CARGO_PKG_VERSION"),
            "libtorch": {"version": libtorch_version, "lib": libtorch_lib},
            "device": {"requested": global.device.to_string(), "resolved": format!("{device:?}"),
                       "cuda_available": tch::Cuda::is_available(), "cuda_device_count": cuda_count,
                       "cudnn_available": tch::Cuda::cudnn_is_available()},
            "threads": tch::get_num_threads(),
            "data_dir": {"path": data.root(), "source": data.source().to_string(), "exists": data.root().is_dir(),
                         "datasets": datasets},
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("dpft {}", env!("CARGO_PKG_VERSION"));
    println!("libtorch   {libtorch_version} ({libtorch_lib})");
    println!("device     {device_line}");
    println!("threads    {} (intra-op; set with OMP_NUM_THREADS)", tch::get_num_threads());
    let exists = if data.root().is_dir() { "" } else { " — does not exist; run `make data` or set DPFT_DATA_DIR" };
    println!("data dir   {} (set by {}){exists}", data.root().display(), data.source());
    for s in &status {
        let total = s.present.len() + s.missing.len();
        let note = match (s.missing.is_empty(), s.folder_exists) {
            (true, _) => "complete".to_string(),
            (false, true) => format!(
                "{}/{total} release files; missing {}",
                s.present.len(),
                s.missing.iter().map(|f| f.path.rsplit('/').next().unwrap_or(f.path)).collect::<Vec<_>>().join(", ")
            ),
            (false, false) => "absent".to_string(),
        };
        println!("  {:<30} {note}", s.dataset.name);
    }
    Ok(())
}
