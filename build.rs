// torch-sys links libtorch but its rpath does not reach our binaries; without this,
// `rcnn` and the test executables fail with "libtorch_cpu.so: cannot open shared object".
fn main() {
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
}
