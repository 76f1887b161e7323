//! `cairn bundle pack DIR -o FILE` and `cairn bundle inspect SOURCE`: bundles
//! outside any Clusterfile, so neither reads one nor touches the state.

use crate::cli::BundleCommand;
use crate::error::{CairnError, Success};
use crate::report::Output;

pub(super) fn run(sub: &BundleCommand, out: Output) -> Result<Success, CairnError> {
    match sub {
        BundleCommand::Pack { dir, output } => {
            let packed =
                crate::bundle::pack::pack(dir, output).map_err(|message| CairnError::Bundle {
                    message: format!("cannot pack {}: {message}", dir.display()),
                    help: "nothing was written; fix what the message names and pack again".into(),
                })?;
            out.bundle_packed(&packed);
        }
        BundleCommand::Inspect { source } => {
            let inspection =
                crate::bundle::image::inspect(source).map_err(|e| CairnError::Bundle {
                    message: e.to_string(),
                    help: "check the file, or save the image again (`sealos save -o NAME.tar IMAGE`); a bundle source is a folder, a .tar.zst (`cairn bundle pack`), an OCI or docker archive (`sealos save -o NAME.tar IMAGE`, `docker save`) or an OCI layout folder".into(),
                })?;
            out.bundle_inspected(&inspection);
        }
    }
    Ok(Success::Ok)
}
