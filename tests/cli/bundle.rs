//! `cairn bundle pack` and `inspect`, and images as bundle sources.
//!
//! The image tests build real images with Debian's tools, as a sealos user
//! would have them: umoci makes an image from scratch in two layers (the
//! second deletes a file, so the image carries a whiteout) with sealos
//! LABELs, ENV and CMD, and skopeo saves it as an OCI archive, a docker
//! archive and an OCI layout with zstd layers. They need umoci and skopeo
//! (scripts/test installs them) and root (umoci unpacks as root).

use std::path::Path;
use std::process::Command;

use crate::support::sandbox::Sandbox;
use crate::support::{pairs, stderr, stdout};

const IMAGE_TOOLS: &str = "needs umoci and skopeo: run by scripts/test";

/// Runs a tool, failing the test with its output when it fails.
fn tool(dir: &Path, program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program} cannot run ({e}); {IMAGE_TOOLS}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
}

/// `cairn bundle inspect SOURCE --json`.
fn inspect(s: &Sandbox, source: &str) -> serde_json::Value {
    let out = s.run(&["bundle", "inspect", source, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("inspect --json is JSON")
}

#[test]
fn pack_gives_the_same_bytes_for_the_same_files_and_ships_as_its_folder() {
    let s = Sandbox::new();
    std::fs::create_dir_all(s.path("app/scripts")).unwrap();
    s.write("app/etc.conf", "setting = 1\n");
    s.write("app/scripts/init.sh", "echo init\n");
    std::fs::set_permissions(
        s.path("app/scripts/init.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let packed = s.run(&["bundle", "pack", "app", "-o", "one.tar.zst"]);
    assert_eq!(packed.status.code(), Some(0), "{}", stderr(&packed));
    assert!(stdout(&packed).contains("Packed 2 files into one.tar.zst"));
    // Other mtimes, same files: same bytes.
    let day_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(86_400);
    for file in ["app/etc.conf", "app/scripts/init.sh"] {
        std::fs::File::options()
            .write(true)
            .open(s.path(file))
            .unwrap()
            .set_modified(day_ago)
            .unwrap();
    }
    let again = s.run(&["bundle", "pack", "app", "-o", "two.tar.zst"]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(
        std::fs::read(s.path("one.tar.zst")).unwrap(),
        std::fs::read(s.path("two.tar.zst")).unwrap(),
        "pack is reproducible"
    );
    let archive = zstd::decode_all(std::fs::File::open(s.path("one.tar.zst")).unwrap()).unwrap();
    for entry in tar::Archive::new(archive.as_slice()).entries().unwrap() {
        let header = entry.unwrap().header().clone();
        assert_eq!(header.mtime().unwrap(), 0);
        assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (0, 0));
        assert_eq!(header.username().unwrap(), Some(""));
    }
    // The archive is the folder, as a bundle.
    let folder = inspect(&s, "app");
    let packed = inspect(&s, "one.tar.zst");
    assert_eq!(folder["source_kind"], "directory");
    assert_eq!(packed["source_kind"], "tar-zst");
    assert_eq!(folder["digest"], packed["digest"], "same files, same root");
    assert_eq!(packed["files"], 2);
    s.write(
        "Clusterfile",
        "version = 1\nname = \"pk\"\n\n[[hosts]]\naddress = \"localhost\"\nname = \"local\"\ntransport = \"local\"\n\n\
         [[bundles]]\nname = \"app\"\nsource = \"one.tar.zst\"\ndest = \"out/app\"\n",
    );
    s.apply();
    assert_eq!(s.read("out/app/etc.conf"), "setting = 1\n");
    assert!(s.planned_actions().is_empty());
}

#[test]
fn a_source_that_is_no_bundle_is_refused_naming_it() {
    let s = Sandbox::new();
    s.write("notes.txt", "not a bundle\n");
    s.edit("Clusterfile", "source = \"web\"", "source = \"notes.txt\"");
    let out = s.run(&["validate"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(
        text.contains("bundle source `notes.txt` is neither a folder"),
        "{text}"
    );
    // A tar that holds an index.json that is not one: the file and the fault.
    let mut builder = tar::Builder::new(Vec::new());
    for (name, body) in [("oci-layout", "{}"), ("index.json", "{ not json")] {
        let mut header = tar::Header::new_ustar();
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, name, body.as_bytes())
            .unwrap();
    }
    std::fs::write(s.path("broken.tar"), builder.into_inner().unwrap()).unwrap();
    let out = s.run(&["bundle", "inspect", "broken.tar"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("broken.tar has an invalid index.json"),
        "{}",
        stderr(&out)
    );
}

/// An image made with umoci in `dir/layout:v1`: two layers (the second
/// deletes `etc/old.conf`), sealos labels, ENV and CMD. `app` is the text of
/// `etc/app.conf`.
fn build_image(dir: &Path, app: &str) {
    let _ = std::fs::remove_dir_all(dir.join("layout"));
    let _ = std::fs::remove_dir_all(dir.join("work1"));
    let _ = std::fs::remove_dir_all(dir.join("work2"));
    tool(dir, "umoci", &["init", "--layout", "layout"]);
    tool(dir, "umoci", &["new", "--image", "layout:v1"]);
    tool(dir, "umoci", &["unpack", "--image", "layout:v1", "work1"]);
    let rootfs = dir.join("work1/rootfs");
    std::fs::create_dir_all(rootfs.join("scripts")).unwrap();
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::write(
        rootfs.join("scripts/init.sh"),
        "echo init \"$1\" > ../init-ran\n",
    )
    .unwrap();
    std::fs::write(rootfs.join("scripts/check.sh"), "true\n").unwrap();
    // Executable, as sealos' `chmod -R 0755` leaves scripts: a label runs them by name.
    std::fs::set_permissions(
        rootfs.join("scripts/init.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(rootfs.join("etc/app.conf"), app).unwrap();
    std::fs::write(rootfs.join("etc/old.conf"), "deleted by layer 2\n").unwrap();
    tool(dir, "umoci", &["repack", "--image", "layout:v1", "work1"]);
    tool(dir, "umoci", &["unpack", "--image", "layout:v1", "work2"]);
    std::fs::remove_file(dir.join("work2/rootfs/etc/old.conf")).unwrap();
    tool(dir, "umoci", &["repack", "--image", "layout:v1", "work2"]);
    tool(
        dir,
        "umoci",
        &[
            "config",
            "--image",
            "layout:v1",
            "--config.label",
            "sealos.io.type=rootfs",
            "--config.label",
            "init=init.sh $registryDomain",
            "--config.label",
            "clean=clean.sh",
            "--config.env",
            "registryDomain=sealos.hub",
            "--config.cmd",
            "echo $(registryDomain)",
        ],
    );
}

/// The image saved as each source kind, beside it.
fn save_image(dir: &Path) {
    for name in ["image.oci.tar", "image.docker.tar"] {
        let _ = std::fs::remove_file(dir.join(name));
    }
    let _ = std::fs::remove_dir_all(dir.join("zstd"));
    tool(
        dir,
        "skopeo",
        &["copy", "oci:layout:v1", "oci-archive:image.oci.tar"],
    );
    tool(
        dir,
        "skopeo",
        &[
            "copy",
            "oci:layout:v1",
            "docker-archive:image.docker.tar:cairn/test:v1",
        ],
    );
    tool(
        dir,
        "skopeo",
        &[
            "copy",
            "--dest-compress-format",
            "zstd",
            "oci:layout:v1",
            "oci:zstd:v1",
        ],
    );
}

/// Folders in the state's cache, with the time each was last changed.
fn cache_entries(s: &Sandbox) -> Vec<(String, std::time::SystemTime)> {
    let mut found: Vec<_> = std::fs::read_dir(s.path(".cairn/cache"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let changed = std::fs::metadata(e.path().join("rootfs/bundle.toml"))
                .and_then(|m| m.modified())
                .unwrap();
            (name, changed)
        })
        .collect();
    found.sort();
    found
}

#[test]
#[ignore = "needs umoci and skopeo: run by scripts/test"]
fn sealos_images_are_bundles_in_every_saved_form() {
    let s = Sandbox::new();
    let images = s.path("images");
    std::fs::create_dir_all(&images).unwrap();
    build_image(&images, "version 1\n");
    save_image(&images);

    for (source, kind) in [
        ("images/image.oci.tar", "oci-archive"),
        ("images/image.docker.tar", "docker-archive"),
        ("images/zstd", "oci-layout"),
    ] {
        let seen = inspect(&s, source);
        assert_eq!(seen["source_kind"], kind, "{seen}");
        assert_eq!(seen["kind"], "rootfs", "{seen}");
        assert_eq!(seen["vars"]["registryDomain"], "sealos.hub", "{seen}");
        assert_eq!(seen["hooks"]["init"], "init.sh $registryDomain");
        assert_eq!(seen["hooks"]["clean"], "clean.sh");
        assert_eq!(
            seen["hooks"]["check"], "bash check.sh",
            "a missing label runs scripts/check.sh, as sealos does"
        );
        assert_eq!(seen["cmd"], "echo ${registryDomain}");
        assert!(seen["vars"].get("PATH").is_none(), "PATH is the image's");
        // scripts/check.sh, scripts/init.sh, etc/app.conf (bundle.toml is not shipped).
        assert_eq!(seen["files"], 3, "{seen}");
        assert!(seen["digest"].as_str().unwrap().starts_with("sha256:"));
    }
    let text = stdout(&s.run(&["bundle", "inspect", "images/image.oci.tar"]));
    assert!(text.contains("(oci-archive)") && text.contains("init = init.sh"));

    s.write(
        "Clusterfile",
        "version = 1\nname = \"img\"\n\n[[hosts]]\naddress = \"localhost\"\nname = \"local\"\ntransport = \"local\"\n\n\
         [[bundles]]\nname = \"oci\"\nsource = \"images/image.oci.tar\"\ndest = \"out/oci\"\n\n\
         [[bundles]]\nname = \"docker\"\nsource = \"images/image.docker.tar\"\ndest = \"out/docker\"\n\n\
         [[bundles]]\nname = \"layout\"\nsource = \"images/zstd\"\ndest = \"out/layout\"\n",
    );
    s.apply();
    for dest in ["out/oci", "out/docker", "out/layout"] {
        assert_eq!(s.read(&format!("{dest}/etc/app.conf")), "version 1\n");
        assert!(
            !s.path(&format!("{dest}/etc/old.conf")).exists(),
            "the whiteout of layer 2 is applied in {dest}"
        );
        assert!(
            !s.path(&format!("{dest}/bundle.toml")).exists(),
            "metadata is not shipped"
        );
        assert_eq!(
            s.read(&format!("{dest}/init-ran")),
            "init sealos.hub\n",
            "the init label ran in scripts/ with the image's ENV"
        );
    }

    // Unchanged images: nothing to do, and nothing unpacked again.
    let cached = cache_entries(&s);
    assert_eq!(cached.len(), 3, "one folder per image digest: {cached:?}");
    assert!(s.planned_actions().is_empty());
    assert_eq!(cache_entries(&s), cached, "the cache is not rewritten");

    // A new version of the image: the bundles that use it ship again.
    build_image(&images, "version 2\n");
    save_image(&images);
    let planned = s.planned_actions();
    let bundles: Vec<_> = planned
        .iter()
        .filter(|(task, _)| task.starts_with("bundle."))
        .cloned()
        .collect();
    assert_eq!(
        bundles,
        pairs(&[
            ("bundle.oci@local", "update"),
            ("bundle.docker@local", "update"),
            ("bundle.layout@local", "update"),
        ])
    );
    assert!(
        planned.contains(&("hook.oci.init@local".to_string(), "update".to_string())),
        "the image's hooks follow its files: {planned:?}"
    );
    s.apply();
    assert_eq!(s.read("out/oci/etc/app.conf"), "version 2\n");
    assert_eq!(s.read("out/layout/etc/app.conf"), "version 2\n");
}

#[test]
#[ignore = "needs umoci and skopeo: run by scripts/test"]
fn a_corrupt_image_is_refused_naming_the_file_and_the_fault() {
    let s = Sandbox::new();
    let images = s.path("images");
    std::fs::create_dir_all(&images).unwrap();
    build_image(&images, "version 1\n");
    // Overwrite a byte of the biggest layer blob of the layout.
    let blobs = images.join("layout/blobs/sha256");
    let biggest = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&biggest).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&biggest, bytes).unwrap();
    s.edit(
        "Clusterfile",
        "source = \"web\"",
        "source = \"images/layout\"",
    );
    let out = s.run(&["plan"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stderr(&out);
    assert!(text.contains("images/layout"), "names the image: {text}");
    assert!(
        text.contains("corrupt") || text.contains("not a readable tar"),
        "says what is wrong: {text}"
    );
}

#[test]
#[ignore = "needs umoci and skopeo: run by scripts/test"]
fn an_image_without_sealos_labels_keeps_its_own_bundle_toml() {
    let s = Sandbox::new();
    let dir = s.path("images");
    std::fs::create_dir_all(&dir).unwrap();
    tool(&dir, "umoci", &["init", "--layout", "layout"]);
    tool(&dir, "umoci", &["new", "--image", "layout:v1"]);
    tool(&dir, "umoci", &["unpack", "--image", "layout:v1", "work"]);
    std::fs::create_dir_all(dir.join("work/rootfs/manifests")).unwrap();
    std::fs::write(dir.join("work/rootfs/manifests/app.yaml"), "kind: List\n").unwrap();
    tool(&dir, "umoci", &["repack", "--image", "layout:v1", "work"]);
    // An app image as sealos users write them: no label, a CMD.
    tool(
        &dir,
        "umoci",
        &[
            "config",
            "--image",
            "layout:v1",
            "--config.cmd",
            "kubectl apply -f manifests/app.yaml",
        ],
    );
    let app = inspect(&s, "images/layout");
    assert_eq!(
        app["kind"], "app",
        "no type label: an application, as in sealos"
    );
    assert_eq!(app["cmd"], "kubectl apply -f manifests/app.yaml");
    // The same image carrying its own bundle.toml keeps it.
    tool(&dir, "umoci", &["unpack", "--image", "layout:v1", "work2"]);
    std::fs::write(
        dir.join("work2/rootfs/bundle.toml"),
        "kind = \"patch\"\n[hooks]\ninit = \"bash own.sh\"\n",
    )
    .unwrap();
    tool(&dir, "umoci", &["repack", "--image", "layout:v1", "work2"]);
    let own = inspect(&s, "images/layout");
    assert_eq!(own["kind"], "patch", "{own}");
    assert_eq!(own["hooks"]["init"], "bash own.sh", "{own}");
    assert!(own["cmd"].is_null(), "its own file, not the CMD: {own}");
}

#[test]
#[ignore = "needs umoci and skopeo: run by scripts/test"]
fn the_kubernetes_fixture_says_the_same_as_a_folder_and_as_a_built_image() {
    let s = Sandbox::new();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/kubernetes");
    let out = s.path("images");
    let script = fixtures.join("build-images.sh");
    tool(
        s.root(),
        "sh",
        &[script.to_str().unwrap(), out.to_str().unwrap()],
    );
    for (folder, image) in [("rootfs", "kubernetes.tar"), ("calico", "calico.tar")] {
        let folder = inspect(&s, fixtures.join(folder).to_str().unwrap());
        let image = inspect(&s, out.join(image).to_str().unwrap());
        assert_eq!(image["source_kind"], "oci-archive");
        for field in ["kind", "hooks", "vars", "cmd", "files", "size"] {
            assert_eq!(
                image[field], folder[field],
                "{field}: the image's labels say what the folder's bundle.toml says"
            );
        }
    }
}
