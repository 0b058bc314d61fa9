//! Gzips the static files served by the docs page and the web page
//! (`assets/swagger-ui`, `web/`) once, at build time, into `OUT_DIR`: the
//! Swagger UI bundle alone is 1.7 MB, about 0.5 MB compressed, and
//! compressing it per request would cost every visitor's CPU time. The
//! routes serve these copies to clients that accept gzip
//! (`routes::web::serve_static`).

use std::{
    error::Error,
    fs,
    io::Write as _,
    path::{Path, PathBuf},
};

use flate2::{Compression, write::GzEncoder};

fn main() -> Result<(), Box<dyn Error>> {
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    for dir in ["web", "assets/swagger-ui"] {
        println!("cargo:rerun-if-changed={dir}");
        compress_dir(Path::new(dir), &out.join(dir))?;
    }
    Ok(())
}

/// Writes `<file>.gz` under `to` for each `.js`, `.css`, `.html` and
/// `.svg` file under `from`.
fn compress_dir(from: &Path, to: &Path) -> Result<(), Box<dyn Error>> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let path = entry?.path();
        let name = path.file_name().ok_or("a file without a name")?;
        if path.is_dir() {
            compress_dir(&path, &to.join(name))?;
            continue;
        }
        let served = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "js" | "css" | "html" | "svg"));
        if !served {
            continue;
        }
        // Level 9: paid once per change of the files, saved on every download.
        let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(&fs::read(&path)?)?;
        let mut target = to.join(name).into_os_string();
        target.push(".gz");
        fs::write(target, encoder.finish()?)?;
    }
    Ok(())
}
