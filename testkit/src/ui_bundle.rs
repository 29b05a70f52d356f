//! The UI's download size and its budget, in one place: `cargo xtask` checks every release
//! build of the UI against it and `cargo xtask bench` reports it, so both show the same
//! figure for the same `dist/`.
//!
//! Counted: every `.wasm` and `.js` file under `dist/` (wasm-bindgen's `snippets/` too),
//! each gzipped on its own at the best level (`gzip -9`), as a browser fetches them, and
//! (`brotli_size`) each brotli-compressed at the best quality. [`gzip`] and [`brotli`] are
//! also what `cargo xtask ui` writes beside the built files as `.gz` and `.br`, so the
//! figures are the bytes `webchat-local` serves.
//! Not counted: `index.html` and the other assets, and hidden directories such as the
//! `.stage/` a failed trunk build leaves behind (it is not part of the site).

use std::io::Write;
use std::path::{Path, PathBuf};

/// The most the UI may download, gzip bytes: what the Leptos build reaches (144.1 KB,
/// with the hand-over from `index.html`'s placeholder join form) plus 3 KB, so it cannot
/// grow unnoticed. `cargo xtask` fails a release build over it.
/// This is a guard, not the goal ([`GOAL_GZIP`]). KB in every UI figure are 1,000 bytes.
pub const BUDGET_GZIP: u64 = 147_100;

/// The goal for the UI's download, gzip bytes: no more than the React client it replaces
/// (92 KB). `cargo xtask bench` reports the UI against it; docs/frontend.md says where
/// the bytes above it go.
pub const GOAL_GZIP: u64 = 92_000;

/// The goal for the UI's download brotli-compressed, bytes: what a browser fetching over
/// HTTPS (CloudFront) or from `webchat-local` gets. `cargo xtask bench` reports the UI
/// against it.
pub const GOAL_BROTLI: u64 = 80_000;

/// Bytes to KB as every UI size is reported: 1,000-byte KB, as download sizes are.
pub fn kb(bytes: u64) -> f64 {
    bytes as f64 / 1000.0
}

/// The wasm + js of a built UI, raw and gzipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundleSize {
    /// Bytes as built.
    pub raw: u64,
    /// Bytes once gzipped, as a compressing server sends them.
    pub gzip: u64,
}

/// Why the UI bundle could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The directory has no built UI in it.
    #[error(
        "{} holds no .wasm file: build the UI first (`cargo xtask dev` builds it)",
        .0.display()
    )]
    NotBuilt(PathBuf),
    /// A file of the bundle could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
}

/// Measures the UI built into `dist`.
pub fn measure(dist: &Path) -> Result<BundleSize, BundleError> {
    let mut size = BundleSize { raw: 0, gzip: 0 };
    for (path, bytes) in bundle_files(dist)? {
        size.raw += bytes.len() as u64;
        size.gzip += gzip(&bytes)
            .map_err(|source| BundleError::Read { path, source })?
            .len() as u64;
    }
    Ok(size)
}

/// The wasm + js of the UI built into `dist`, each file brotli-compressed on its own
/// ([`brotli`]), as a browser that accepts `br` downloads them.
pub fn brotli_size(dist: &Path) -> Result<u64, BundleError> {
    let mut size = 0;
    for (path, bytes) in bundle_files(dist)? {
        size += brotli(&bytes)
            .map_err(|source| BundleError::Read { path, source })?
            .len() as u64;
    }
    Ok(size)
}

/// `bytes` gzipped at the best level (`gzip -9`).
pub fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes)?;
    encoder.finish()
}

/// `bytes` brotli-compressed at the best quality (11) with the largest window browsers
/// accept (16 MB), as `brotli -q 11` does.
pub fn brotli(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let params = brotli::enc::BrotliEncoderParams {
        quality: 11,
        lgwin: 24,
        size_hint: bytes.len(),
        ..Default::default()
    };
    let mut out = Vec::with_capacity(bytes.len() / 3);
    brotli::BrotliCompress(&mut &bytes[..], &mut out, &params)?;
    Ok(out)
}

/// Every counted file of `dist` with its bytes.
fn bundle_files(dist: &Path) -> Result<Vec<(PathBuf, Vec<u8>)>, BundleError> {
    let mut files = Vec::new();
    match std::fs::metadata(dist) {
        Ok(meta) if meta.is_dir() => collect(dist, &mut files)?,
        Ok(_) => return Err(BundleError::NotBuilt(dist.to_path_buf())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(BundleError::NotBuilt(dist.to_path_buf()))
        }
        Err(source) => {
            return Err(BundleError::Read {
                path: dist.to_path_buf(),
                source,
            })
        }
    }
    if !files.iter().any(|f| extension(f) == Some("wasm")) {
        return Err(BundleError::NotBuilt(dist.to_path_buf()));
    }
    files
        .into_iter()
        .map(|path| match std::fs::read(&path) {
            Ok(bytes) => Ok((path, bytes)),
            Err(source) => Err(BundleError::Read { path, source }),
        })
        .collect()
}

fn extension(path: &Path) -> Option<&str> {
    path.extension().and_then(|e| e.to_str())
}

/// The `.wasm` and `.js` files under `dir`, at any depth.
fn collect(dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), BundleError> {
    let read_error = |source| BundleError::Read {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        let path = entry.path();
        if entry.file_type().map_err(read_error)?.is_dir() {
            if !entry.file_name().to_string_lossy().starts_with('.') {
                collect(&path, found)?;
            }
        } else if matches!(extension(&path), Some("wasm" | "js")) {
            found.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `gzip -9` of one file, as the browser would fetch it compressed.
    fn gzip_9(bytes: &[u8]) -> u64 {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(9));
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap().len() as u64
    }

    #[test]
    fn wasm_and_js_at_any_depth_count_and_nothing_else_does() {
        let dist = tempfile::tempdir().unwrap();
        let wasm: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        let js = b"export function start() { return 1; }\n".repeat(200);
        let snippet = b"export const x = 1;\n".to_vec();
        std::fs::write(dist.path().join("app_bg.wasm"), &wasm).unwrap();
        std::fs::write(dist.path().join("app.js"), &js).unwrap();
        std::fs::create_dir_all(dist.path().join("snippets/app-1")).unwrap();
        std::fs::write(dist.path().join("snippets/app-1/inline0.js"), &snippet).unwrap();
        std::fs::write(dist.path().join("index.html"), vec![b'h'; 9_000]).unwrap();
        std::fs::write(dist.path().join("style.css"), vec![b'c'; 9_000]).unwrap();
        std::fs::create_dir_all(dist.path().join(".stage")).unwrap();
        std::fs::write(dist.path().join(".stage/app_bg.wasm"), &wasm).unwrap();

        let size = measure(dist.path()).unwrap();
        assert_eq!(size.raw, (wasm.len() + js.len() + snippet.len()) as u64);
        // Each file compressed on its own, as it is served.
        assert_eq!(size.gzip, gzip_9(&wasm) + gzip_9(&js) + gzip_9(&snippet));
        assert!(size.gzip < size.raw / 10, "{size:?}");
    }

    #[test]
    fn brotli_counts_the_same_files_and_decodes_to_them() {
        let dist = tempfile::tempdir().unwrap();
        let wasm: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        let js = b"export function start() { return 1; }\n".repeat(200);
        std::fs::write(dist.path().join("app_bg.wasm"), &wasm).unwrap();
        std::fs::write(dist.path().join("app.js"), &js).unwrap();
        std::fs::write(dist.path().join("index.html"), vec![b'h'; 9_000]).unwrap();

        let size = brotli_size(dist.path()).unwrap();
        let each = |bytes: &[u8]| brotli(bytes).unwrap();
        assert_eq!(size, (each(&wasm).len() + each(&js).len()) as u64);
        assert!(size < measure(dist.path()).unwrap().gzip, "{size}");
        let mut decoded = Vec::new();
        brotli::BrotliDecompress(&mut &each(&js)[..], &mut decoded).unwrap();
        assert_eq!(decoded, js);
        assert!(matches!(
            brotli_size(&dist.path().join("missing")),
            Err(BundleError::NotBuilt(_))
        ));
    }

    #[test]
    fn a_dist_without_wasm_is_not_built() {
        let dist = tempfile::tempdir().unwrap();
        assert!(matches!(
            measure(&dist.path().join("missing")),
            Err(BundleError::NotBuilt(_))
        ));
        std::fs::write(dist.path().join("app.js"), b"1").unwrap();
        std::fs::write(dist.path().join("index.html"), b"<html>").unwrap();
        let err = measure(dist.path()).unwrap_err();
        assert!(matches!(err, BundleError::NotBuilt(_)));
        assert!(err.to_string().contains("cargo xtask dev"), "{err}");
    }

    #[test]
    fn sizes_are_in_thousand_byte_kb() {
        assert!((kb(1_500) - 1.5).abs() < f64::EPSILON);
    }
}
