//! A Clusterfile through everything `cairn validate` does; see
//! `cairn_fuzz::targets::ClusterfileTarget`.

#![no_main]

use std::sync::LazyLock;

use cairn_fuzz::targets::ClusterfileTarget;
use cairn_fuzz::{repository, sandbox};
use libfuzzer_sys::{Corpus, fuzz_target};

static TARGET: LazyLock<ClusterfileTarget> =
    LazyLock::new(|| ClusterfileTarget::new(&repository(), &sandbox("clusterfile")));

fuzz_target!(|data: &[u8]| -> Corpus {
    if TARGET.run(data) {
        Corpus::Keep
    } else {
        Corpus::Reject
    }
});
