//! A host the Clusterfile no longer lists (or lists at another address),
//! reached as its record in the state says, so that what cairn did there
//! can be undone.

use std::path::Path;

use crate::model::{Host, HostId, LoginSecret, SshSettings, load_secret};
use crate::state::HostRecord;

/// A former host as the transport connects to it, from its record. Its id
/// is not a model host's (it is not in the Clusterfile any more) and is
/// never looked up; the fleet keeps former hosts by name. A sudo password
/// comes from the secret the record names, read now.
pub(super) fn former_host(
    name: &str,
    record: &HostRecord,
    base_dir: &Path,
) -> Result<Host, String> {
    let recorded_secret = |what: &str, reference: &Option<String>| {
        match reference {
        Some(reference) => load_secret(reference, base_dir)
            .map(|value| {
                Some(LoginSecret {
                    reference: reference.clone(),
                    value,
                })
            })
            .map_err(|e| {
                format!(
                    "its {what} ({reference}, recorded at its last apply): {}; {}, or forget the host with `cairn state rm {name}`",
                    e.message, e.help
                )
            }),
        None => Ok(None),
    }
    };
    let sudo_password = recorded_secret("sudo password", &record.sudo_password)?;
    Ok(Host {
        id: HostId::outside_model(),
        name: name.to_string(),
        address: record.address.clone(),
        user: record.user.clone(),
        port: record.port,
        user_given: true,
        port_given: true,
        roles: Vec::new(),
        vars: std::collections::BTreeMap::new(),
        transport: record.transport,
        ssh: SshSettings {
            identity: record.identity.clone(),
            identity_passphrase: recorded_secret(
                "identity passphrase",
                &record.identity_passphrase,
            )?,
            password: recorded_secret("password", &record.password)?,
            certificate: record.certificate.clone(),
            host_ca: record.host_ca.clone(),
            config: record.config.clone(),
            sudo: record.sudo,
            sudo_password: sudo_password.map(|s| s.value),
            sudo_password_ref: record.sudo_password.clone(),
            host_keys: record.host_keys,
            jump: record
                .jump
                .iter()
                .flat_map(|j| j.split(','))
                .map(str::to_string)
                .collect(),
            connect_timeout: std::time::Duration::from_millis(record.connect_timeout_ms),
            alias: None,
        },
        index: usize::MAX,
        span: 0..0,
    })
}
