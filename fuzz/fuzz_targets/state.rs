//! A cluster's `state.json` and `journal.jsonl`, loaded, planned against
//! and compacted; see `cairn_fuzz::targets::StateTarget` (and its input format).

#![no_main]

use std::sync::LazyLock;

use cairn_fuzz::targets::StateTarget;
use cairn_fuzz::{repository, sandbox};
use libfuzzer_sys::fuzz_target;

static TARGET: LazyLock<StateTarget> =
    LazyLock::new(|| StateTarget::new(&repository(), &sandbox("state")));

fuzz_target!(|data: &[u8]| TARGET.run(data));
