//! Rust types and gRPC client stubs for the part of etcd's v3 API the etcd backend uses,
//! generated from `crates/store/proto/etcd/*.proto` and checked in, so that building the
//! crate needs neither `protoc` nor a build script.
//!
//! The files under `src/etcd/proto/` are written by `tonic-prost-build` (fed by `protox`,
//! a protobuf compiler in Rust); the test below regenerates them into a temporary
//! directory and fails when they differ. After editing a `.proto` file, refresh them with
//! `NOVACRON_REGEN_PROTO=1 cargo nextest run -p novacron-store -E 'test(generated_etcd_code_is_current)'`.

// Generated code: keep it byte-for-byte what the generator wrote (rustfmt would change it
// and the freshness test would then fail), and do not hold it to our lints.
#[rustfmt::skip]
#[allow(clippy::all, clippy::pedantic, clippy::unwrap_used, missing_docs, dead_code)]
#[path = "proto/mvccpb.rs"]
pub(crate) mod mvccpb;

#[rustfmt::skip]
#[allow(clippy::all, clippy::pedantic, clippy::unwrap_used, missing_docs, dead_code)]
#[path = "proto/etcdserverpb.rs"]
pub(crate) mod etcdserverpb;

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// The `.proto` files compiled, relative to `crates/store/proto`.
    const PROTO_FILES: [&str; 2] = ["etcd/mvcc.proto", "etcd/rpc.proto"];
    /// The files the generator writes (one per protobuf package).
    const GENERATED_FILES: [&str; 2] = ["mvccpb.rs", "etcdserverpb.rs"];

    fn crate_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    /// Generate the Rust for every package into `out_dir`.
    fn generate(out_dir: &Path) {
        let proto_root = crate_dir().join("proto");
        let files: Vec<PathBuf> = PROTO_FILES.iter().map(|f| proto_root.join(f)).collect();
        let descriptors = match protox::compile(&files, [&proto_root]) {
            Ok(set) => set,
            Err(e) => panic!("compiling {PROTO_FILES:?} failed: {e:?}"),
        };
        let generated = tonic_prost_build::configure()
            .build_server(false)
            .build_client(true)
            // Channels are built in src/etcd/client.rs; no `connect` helpers.
            .build_transport(false)
            .out_dir(out_dir)
            .compile_fds(descriptors);
        if let Err(e) = generated {
            panic!("generating Rust from {PROTO_FILES:?} failed: {e}");
        }
    }

    #[test]
    fn generated_etcd_code_is_current() {
        let checked_in = crate_dir().join("src/etcd/proto");
        if std::env::var_os("NOVACRON_REGEN_PROTO").is_some() {
            generate(&checked_in);
            return;
        }
        let fresh = tempfile::tempdir().expect("temporary directory");
        generate(fresh.path());
        let mut stale = Vec::new();
        for name in GENERATED_FILES {
            let want = std::fs::read_to_string(fresh.path().join(name))
                .unwrap_or_else(|e| panic!("generator wrote no {name}: {e}"));
            let have = std::fs::read_to_string(checked_in.join(name)).unwrap_or_default();
            if want != have {
                stale.push(name);
            }
        }
        let mut written: Vec<String> = std::fs::read_dir(fresh.path())
            .expect("read temporary directory")
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        written.sort();
        let mut expected: Vec<String> = GENERATED_FILES.iter().map(|s| s.to_string()).collect();
        expected.sort();
        assert_eq!(
            written, expected,
            "the generator now writes other files: update GENERATED_FILES and the modules above"
        );
        assert!(
            stale.is_empty(),
            "{} in crates/store/src/etcd/proto/ differ from what proto/etcd/*.proto \
             generates; refresh them with `NOVACRON_REGEN_PROTO=1 cargo nextest run -p novacron-store -E \
             'test(generated_etcd_code_is_current)'` and commit the result",
            stale.join(", ")
        );
    }
}
