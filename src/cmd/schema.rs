//! `cairn schema`: the Clusterfile's JSON schema, generated from the parser's types.

use crate::error::{CairnError, Success};
use crate::report::Output;

pub(super) fn run(out: &Output) -> Result<Success, CairnError> {
    out.raw(&crate::schema::clusterfile_schema());
    Ok(Success::Ok)
}
