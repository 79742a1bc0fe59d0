//! Puts the dashboard's chart library (uPlot, installed by npm from `web/package-lock.json`) into
//! `OUT_DIR`, where `src/http/dashboard.rs` embeds it: the binary serves it itself, so the
//! dashboard works offline and never loads anything from a CDN.
//!
//! `npm ci` runs only when `web/node_modules` lacks uPlot (skipped with `KWI_SKIP_NPM=1` or without
//! npm). The build never fails for want of npm: a stand-in script is embedded instead, and the page
//! then says how to install the library.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const ASSETS: [&str; 2] = ["uPlot.iife.min.js", "uPlot.min.css"];

/// Served instead of uPlot when it is not installed: the page reads this flag and says so.
const FALLBACK_JS: &str =
    "window.KWI_UPLOT_MISSING = \"chart library not installed: run `npm ci` in web/\";\n";

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    let web = root.join("web");
    let dist = web.join("node_modules/uplot/dist");

    println!("cargo:rerun-if-env-changed=KWI_SKIP_NPM");
    for f in [
        "package.json",
        "package-lock.json",
        "index.html",
        "app.js",
        "style.css",
    ] {
        println!("cargo:rerun-if-changed=web/{f}");
    }
    println!("cargo:rerun-if-changed=web/node_modules/uplot/dist/uPlot.iife.min.js");

    if !dist.join(ASSETS[0]).exists() && std::env::var("KWI_SKIP_NPM").as_deref() != Ok("1") {
        npm_ci(&web);
    }

    let installed = ASSETS.iter().all(|a| dist.join(a).exists());
    for asset in ASSETS {
        let dest = out.join(asset);
        let bytes = if installed {
            std::fs::read(dist.join(asset)).unwrap_or_else(|e| panic!("read {asset}: {e}"))
        } else if asset.ends_with(".js") {
            FALLBACK_JS.as_bytes().to_vec()
        } else {
            b"/* uPlot not installed */\n".to_vec()
        };
        // Rewriting identical bytes would still touch the file and recompile the crate.
        if std::fs::read(&dest).ok().as_deref() != Some(&bytes[..]) {
            std::fs::write(&dest, bytes).unwrap_or_else(|e| panic!("write {asset}: {e}"));
        }
    }
    if !installed {
        println!(
            "cargo:warning=uPlot is not installed (run `npm ci` in web/): the dashboard will show no charts"
        );
    }
}

/// Runs `npm ci` in `web/`; a missing npm or a failed install is a warning, not a build failure.
fn npm_ci(web: &Path) {
    match Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(web)
        // Build-script stdout is cargo's instruction channel: keep npm's chatter off it.
        .stdout(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => {}
        Ok(s) => println!("cargo:warning=`npm ci` in web/ failed ({s})"),
        Err(e) => println!("cargo:warning=npm not available ({e}); dashboard charts disabled"),
    }
}
