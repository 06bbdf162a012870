//! `device::set_tf32` reaches libtorch's global context (its own test binary: the switches are
//! process-wide, and other tests set them).

use inception_rcnn::run::device::{set_tf32, tf32, Tf32};

/// libtorch's own getter, `at::globalContext().allowTF32CuBLAS()`.
fn matmul_allowed() -> bool {
    // SAFETY: at::globalContext() -> Context&; Context::allowTF32CuBLAS() const -> bool.
    unsafe {
        let this = libloading::os::unix::Library::this();
        let context = this
            .get::<unsafe extern "C" fn() -> *mut std::ffi::c_void>(b"_ZN2at13globalContextEv")
            .unwrap();
        let get = this
            .get::<unsafe extern "C" fn(*mut std::ffi::c_void) -> bool>(
                b"_ZNK2at7Context15allowTF32CuBLASEv",
            )
            .unwrap();
        get(context())
    }
}

#[test]
fn tf32_switches_are_set_in_libtorch() {
    assert_eq!(tf32(), None, "untouched until set");
    assert!(set_tf32(Tf32 {
        convolutions: false,
        matmul: true
    }));
    assert!(matmul_allowed());
    assert!(set_tf32(Tf32::OFF));
    assert!(!matmul_allowed());
    assert_eq!(tf32(), Some(Tf32::OFF));
}
