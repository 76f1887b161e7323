//! Image references (`labring/helm:v3.9.4`) compared as a registry
//! resolves them, so that a config's `match` and an imported sealos
//! Clusterfile find a bundle's image however the reference was written
//! (`docker.io/labring/helm:v3.9.4` is the same image).

/// Whether two image references name the same image, as a registry would
/// resolve both: `docker.io/` and `library/` are implied, and a reference
/// without tag or digest means `:latest`.
pub fn same_image(a: &str, b: &str) -> bool {
    normalized_image(a) == normalized_image(b)
}

/// `calico:v3` and `docker.io/library/calico:v3` alike, as
/// `docker.io/library/calico:v3`.
pub fn normalized_image(reference: &str) -> String {
    let reference = reference.trim();
    let (name, suffix) = if let Some((name, digest)) = reference.split_once('@') {
        (name, format!("@{digest}"))
    } else {
        // A tag is after the last `:` that follows the last `/` (a
        // registry's port is before it).
        let last_slash = reference.rfind('/').map_or(0, |i| i + 1);
        match reference[last_slash..].rfind(':') {
            Some(colon) => (
                &reference[..last_slash + colon],
                reference[last_slash + colon..].to_string(),
            ),
            None => (reference, ":latest".to_string()),
        }
    };
    let mut parts: Vec<&str> = name.split('/').collect();
    let has_registry = parts.len() > 1
        && (parts[0].contains('.') || parts[0].contains(':') || parts[0] == "localhost");
    if !has_registry {
        parts.insert(0, "docker.io");
    }
    if parts[0] == "docker.io" && parts.len() == 2 {
        parts.insert(1, "library");
    }
    format!("{}{suffix}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::{normalized_image, same_image};

    #[test]
    fn image_references_compare_as_a_registry_resolves_them() {
        assert_eq!(
            normalized_image("calico"),
            "docker.io/library/calico:latest"
        );
        assert_eq!(
            normalized_image("labring/calico:v3.26.1"),
            "docker.io/labring/calico:v3.26.1"
        );
        assert_eq!(
            normalized_image("registry.local:5000/labring/helm"),
            "registry.local:5000/labring/helm:latest"
        );
        assert!(same_image(
            "docker.io/labring/helm:v3.9.4",
            "labring/helm:v3.9.4"
        ));
        assert!(same_image("nginx", "docker.io/library/nginx:latest"));
        assert!(!same_image("labring/helm:v3.9.4", "labring/helm:v3.8.2"));
        assert!(same_image(
            "labring/helm@sha256:abc",
            "docker.io/labring/helm@sha256:abc"
        ));
    }
}
