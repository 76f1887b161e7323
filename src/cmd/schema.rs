//! `cairn schema`: the Clusterfile's JSON schema, generated from the parser's types.

use crate::error::Success;
use crate::report::Output;

pub(super) fn run(out: Output) -> Success {
    out.raw(&crate::schema::clusterfile_schema());
    Success::Ok
}
