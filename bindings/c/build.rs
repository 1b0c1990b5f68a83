//! Gives libtenure.so its SONAME, so programs linked against it record `libtenure.so.0` and
//! keep working across compatible upgrades (sdk-c installs libtenure.so.0.1.0 with the
//! libtenure.so.0 and libtenure.so links). Bump the 0 when the ABI breaks.

const SONAME_MAJOR: u32 = 0;

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libtenure.so.{SONAME_MAJOR}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
