//! sdk-c/include/tenure.h is generated from this crate by cbindgen and committed. This test
//! regenerates it and fails when the committed copy differs; with `TENURE_BLESS_HEADER=1` it
//! writes the new header instead:
//!
//!     TENURE_BLESS_HEADER=1 cargo test -p tenure-c --test header

use std::path::Path;

#[test]
fn the_committed_header_is_what_cbindgen_generates() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let header = crate_dir.join("../../sdk-c/include/tenure.h");
    let mut config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("bindings/c/cbindgen.toml");
    // The version macros come from the crate's version (cbindgen cannot export a string const).
    let version = env!("CARGO_PKG_VERSION");
    let [major, minor, patch] =
        [env!("CARGO_PKG_VERSION_MAJOR"), env!("CARGO_PKG_VERSION_MINOR"), env!("CARGO_PKG_VERSION_PATCH")];
    config.after_includes = Some(format!(
        "\n/** The version of the library this header describes (compare with tenure_version()). */\n\
         #define TENURE_VERSION \"{version}\"\n\
         #define TENURE_VERSION_MAJOR {major}\n\
         #define TENURE_VERSION_MINOR {minor}\n\
         #define TENURE_VERSION_PATCH {patch}"
    ));
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen could not generate the header")
        .write(&mut generated);
    let generated = String::from_utf8(generated).expect("the header is UTF-8");

    if std::env::var_os("TENURE_BLESS_HEADER").is_some_and(|v| !v.is_empty()) {
        std::fs::write(&header, &generated).expect("cannot write sdk-c/include/tenure.h");
        return;
    }
    let committed = std::fs::read_to_string(&header).unwrap_or_default();
    if committed != generated {
        let first = committed.lines().zip(generated.lines()).position(|(a, b)| a != b);
        let line = first.unwrap_or_else(|| committed.lines().count().min(generated.lines().count())) + 1;
        panic!(
            "sdk-c/include/tenure.h is stale (first difference at line {line}); regenerate it with\n    \
             TENURE_BLESS_HEADER=1 cargo test -p tenure-c --test header\nand commit it"
        );
    }
}
