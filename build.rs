// torch-sys links libtorch but its rpath does not reach our binaries; without this,
// `rcnn` and the test executables fail with "libtorch_cpu.so: cannot open shared object".
fn main() {
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB").unwrap_or_default();
    if !lib.is_empty() {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
    // Where `rcnn env` looks for libtorch_cuda.so when LD_LIBRARY_PATH does not say.
    println!("cargo:rustc-env=RCNN_LIBTORCH_LIB={lib}");
    // The libtorch version built against, for `rcnn env` (the file tch's check reads).
    let version = std::env::var("LIBTORCH")
        .ok()
        .and_then(|dir| {
            std::fs::read_to_string(std::path::Path::new(&dir).join("build-version")).ok()
        })
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=RCNN_LIBTORCH_VERSION={version}");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=LIBTORCH");
}
